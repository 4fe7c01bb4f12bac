"""debian/postinst and debian/postrm: update-grub runs on configure /
remove / purge only where GRUB is in use, and a failing update-grub never
fails the install or the removal. The scripts run with GRUB's paths
pointed into tmp_path and a stand-in update-grub that logs its calls."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

DEBIAN = Path(__file__).resolve().parents[2] / "debian"


@pytest.fixture
def system(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    grub = tmp_path / "boot" / "grub"
    grub.mkdir(parents=True)
    log = tmp_path / "update-grub.log"

    def run(script, *args, grub_cfg=True, update_grub="exit 0"):
        cfg = grub / "grub.cfg"
        if grub_cfg:
            cfg.write_text("# grub.cfg\n")
        elif cfg.exists():
            cfg.unlink()
        tool = bin_dir / "update-grub"
        if update_grub is None:
            tool.unlink(missing_ok=True)
        else:
            tool.write_text(f"#!/bin/sh\necho called >> {log}\n{update_grub}\n")
            tool.chmod(0o755)
        (grub / "bootenv.env").write_text("# GRUB Environment Block\n")
        text = (DEBIAN / script).read_text().replace("/boot/grub/", f"{grub}/")
        copy = tmp_path / script
        copy.write_text(text)
        proc = subprocess.run(
            ["sh", "-e", str(copy), *args],
            env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        calls = len(log.read_text().splitlines()) if log.exists() else 0
        log.unlink(missing_ok=True)
        return proc, calls

    run.grub = grub
    return run


def test_postinst_updates_grub_on_configure(system):
    proc, calls = system("postinst", "configure", "")
    assert (proc.returncode, calls) == (0, 1)


def test_postinst_without_grub_does_nothing(system):
    assert system("postinst", "configure", "", grub_cfg=False)[1] == 0
    proc, calls = system("postinst", "configure", "", update_grub=None)
    assert (proc.returncode, calls) == (0, 0)


def test_a_failing_update_grub_never_fails_the_install_or_removal(system):
    for script, action in (("postinst", "configure"), ("postrm", "remove"), ("postrm", "purge")):
        proc, calls = system(script, action, update_grub="exit 1")
        assert (proc.returncode, calls) == (0, 1), (script, action, proc.stderr)
        assert "update-grub failed" in proc.stderr


@pytest.mark.parametrize("action", ["remove", "purge"])
def test_postrm_updates_grub_on_remove_and_purge(system, action):
    proc, calls = system("postrm", action)
    assert (proc.returncode, calls) == (0, 1)


def test_purge_drops_grubs_bootenv_env_remove_keeps_it(system):
    system("postrm", "remove")
    assert (system.grub / "bootenv.env").exists()
    system("postrm", "purge")
    assert not (system.grub / "bootenv.env").exists()


@pytest.mark.parametrize("action", ["upgrade", "failed-upgrade", "disappear"])
def test_postrm_leaves_grub_alone_otherwise(system, action):
    proc, calls = system("postrm", action, "0.1.1")
    assert (proc.returncode, calls) == (0, 0)
