"""The .deb `make deb` built (dist/bootenv_VERSION_all.deb): its control
fields, files, modes and conffiles, then the program extracted from it
(`dpkg-deb -x`) run by Debian's python3 on Debian's typer/click/tabulate
against a fake pool, its bash completion, and its grub.d script once
bootenv is gone. The host cannot install it (zfsutils-linux is in
contrib); tests/vm installs it in a guest. `make test-deb`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .scenario import command, run_scenario

ROOT = Path(__file__).resolve().parents[2]
SYSPY = "/usr/bin/python3"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def version() -> str:
    first = (ROOT / "debian/changelog").read_text().splitlines()[0]
    return first.split("(", 1)[1].split(")", 1)[0]


@pytest.fixture(scope="module")
def deb() -> Path:
    path = Path(os.environ.get("BOOTENV_DEB") or ROOT / "dist" / f"bootenv_{version()}_all.deb")
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make deb' first")
    return path


@pytest.fixture(scope="module")
def tree(deb, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deb") / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def test_control_fields(deb):
    assert field(deb, "Package") == "bootenv"
    assert field(deb, "Architecture") == "all"
    assert field(deb, "Section") == "contrib/admin"
    depends = [d.strip().split()[0] for d in field(deb, "Depends").split(",")]
    for package in ("python3-typer", "python3-click", "python3-tabulate", "python3-apt", "zfsutils-linux"):
        assert package in depends, depends
    assert "python3-pyzfs" in field(deb, "Recommends")
    assert "grub" in field(deb, "Suggests") and "systemd-boot" in field(deb, "Suggests")


def test_files_and_modes(tree):
    def mode(rel):
        return (tree / rel).stat().st_mode & 0o777

    assert mode("usr/bin/bootenv") == 0o755
    assert (tree / "usr/bin/bootenv").read_text().startswith("#!/usr/bin/python3\n")  # Debian's, no venv
    assert (tree / "usr/lib/python3/dist-packages/bootenv/cli.py").exists() or (
        tree / "usr/lib/python3/dist-packages/bootenv/cli/__init__.py"
    ).exists()
    assert mode("etc/grub.d/42_bootenv") == 0o755
    assert (tree / "etc/grub.d/42_bootenv").read_bytes() == (ROOT / "contrib/grub.d/42_bootenv").read_bytes()
    assert (tree / "etc/apt/apt.conf.d/80bootenv").read_bytes() == (ROOT / "contrib/apt/80bootenv").read_bytes()
    assert (tree / "etc/bootenv/bootenv.conf").read_bytes() == (ROOT / "contrib/bootenv.conf").read_bytes()
    assert (tree / "etc/bootenv/health.d").is_dir()
    for unit in ("bootenv-boot.service", "bootenv-confirm.service"):
        assert (tree / "lib/systemd/system" / unit).read_bytes() == (ROOT / "contrib/systemd" / unit).read_bytes()
    assert (tree / "usr/share/man/man8/bootenv.8.gz").exists()
    assert (tree / "usr/share/bash-completion/completions/bootenv").exists()
    examples = tree / "usr/share/doc/bootenv/examples/ansible"
    assert (examples / "stage-be.yml").read_bytes() == (ROOT / "contrib/ansible/stage-be.yml").read_bytes()
    assert (examples / "README.md").exists() and (examples / "inventory.example.yml").exists()


def test_conffiles_and_maintainer_scripts(deb, tmp_path):
    control = tmp_path / "DEBIAN"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    assert sorted((control / "conffiles").read_text().split()) == [
        "/etc/apt/apt.conf.d/80bootenv",
        "/etc/bootenv/bootenv.conf",
        "/etc/grub.d/42_bootenv",
    ]
    postinst = (control / "postinst").read_text()
    postrm = (control / "postrm").read_text()
    for script in ("postinst", "postrm", "prerm", "preinst"):
        if (control / script).exists():
            subprocess.run(["sh", "-n", str(control / script)], check=True)
    assert "update-grub ||" in postinst and "command -v update-grub" in postinst
    assert "update-grub ||" in postrm and "command -v update-grub" in postrm
    # units enabled, never started (nor stopped) by apt
    assert "deb-systemd-helper enable 'bootenv-boot.service'" in postinst
    assert "deb-systemd-helper enable 'bootenv-confirm.service'" in postinst
    assert "deb-systemd-invoke start" not in postinst and "deb-systemd-invoke restart" not in postinst
    assert not (control / "preinst").exists() or "deb-systemd-invoke stop" not in (control / "preinst").read_text()


def extracted_env(tree: Path, tmp_path: Path) -> dict:
    return {
        "PATH": SYSTEM_PATH,
        "HOME": str(tmp_path),
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(tree / "usr/lib/python3/dist-packages"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "BOOTENV_ZFS": f"fake:{tmp_path / 'pool.json'}",
        "BOOTENV_LOCK": str(tmp_path / "bootenv.lock"),
    }


def test_extracted_program_on_debians_python(tree, tmp_path):
    env = extracted_env(tree, tmp_path)
    where = subprocess.run(
        [SYSPY, "-c", "import bootenv, typer, click, tabulate; print(bootenv.__file__); print(typer.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert where[0].startswith(str(tree)), where
    assert where[1].startswith("/usr/lib/python3/dist-packages/"), where  # Debian's python3-typer
    bootenv = command([SYSPY, str(tree / "usr/bin/bootenv")], env, tmp_path)
    fake = command([SYSPY, "-m", "bootenv.zfs.fake"], env, tmp_path)
    run_scenario(bootenv, fake, tmp_path / "pool.json")


def test_completion_of_the_extracted_program(tree, tmp_path):
    env = extracted_env(tree, tmp_path)
    subprocess.run([SYSPY, "-m", "bootenv.zfs.fake", "init", str(tmp_path / "pool.json"), "--root", "rpool/ROOT/debian"], env=env, cwd=tmp_path, check=True)
    imports = tmp_path / "imports"
    wrapper = tmp_path / "bootenv"
    wrapper.write_text(f'#!/bin/sh\nexec {SYSPY} -X importtime {tree / "usr/bin/bootenv"} "$@" 2>>{imports}\n')
    wrapper.chmod(0o755)
    subprocess.run([str(wrapper), "create", "before-upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True)
    imports.unlink()
    driver = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bootenv; printf "%s\\n" "${COMPREPLY[@]}"'
    script = tree / "usr/share/bash-completion/completions/bootenv"

    def tab(*words):
        start = time.monotonic()
        out = subprocess.run(["bash", "--norc", "--noprofile", "-c", driver, "_", str(script), str(wrapper), *words],
                             env=env, cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60)
        return out.stdout.split(), time.monotonic() - start

    words, _ = tab("des")
    assert words == ["describe", "destroy"]
    assert not imports.exists()  # a command name: no Python at all
    words, seconds = tab("activate", "")
    assert words == ["debian", "before-upgrade"]
    print(f"BE-name TAB: {seconds:.2f} s")
    loaded = imports.read_text()
    assert "apt_pkg" not in loaded and "libzfs_core" not in loaded
    # Without BOOTENV_ZFS the completion asks through the zfs command (--zfs cli): still no pyzfs.
    imports.unlink()
    del env["BOOTENV_ZFS"]
    subprocess.run(["bash", "--norc", "--noprofile", "-c", driver, "_", str(script), str(wrapper), "activate", ""],
                   env=env, cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60)
    loaded = imports.read_text()
    assert "bootenv.zfs.cli" in loaded and "libzfs_core" not in loaded and "apt_pkg" not in loaded


def test_grub_script_is_silent_once_bootenv_is_gone(tree):
    # After `apt remove` the conffile stays: update-grub must still work.
    out = subprocess.run(["sh", str(tree / "etc/grub.d/42_bootenv")], env={"PATH": SYSTEM_PATH},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_vm_image_can_satisfy_the_depends(deb):
    """The VM guest is offline: every Depends of the .deb must be in its
    image (installed) or in its local apt repository (downloaded), both
    named in tests/vm/image/setup.sh. A new dependency fails here, in
    seconds, not after a 15-minute image build."""
    depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], check=True, capture_output=True,
                             text=True).stdout
    names = {alt.split()[0].split(":")[0] for item in depends.split(",") for alt in item.split("|")[:1]
             if alt.strip()}
    setup = (ROOT / "tests/vm/image/setup.sh").read_text()
    words = set(setup.replace("\\\n", " ").split())
    missing = sorted(n for n in names if n not in words and n != "python3")
    assert not missing, f"tests/vm/image/setup.sh neither installs nor downloads {missing} (Depends: {depends})"
    assert {"python3-typer", "python3-click", "python3-tabulate"} <= names
