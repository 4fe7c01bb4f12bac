"""The wheel, as a user gets it: built from the tree (`pip wheel --no-deps`),
installed into a fresh venv of Debian's python3 with no system site
packages and the dependencies pip resolves from the index today (the
newest typer, click, tabulate), then a fake-pool scenario through its
`bootenv` console script. `make test-wheel`; not in the default testpaths
(it needs the index and takes about half a minute)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .scenario import check, command, run_scenario

ROOT = Path(__file__).resolve().parents[2]
SYSPY = "/usr/bin/python3"
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", ".pybuild", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis")


def sh(*argv, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_installs_a_working_bootenv(tmp_path):
    # A copy: setuptools' build/ in the tree could carry modules since removed.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    wheels = tmp_path / "wheels"
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, src)
    (wheel,) = wheels.glob("bootenv-*.whl")

    venv = tmp_path / "venv"
    sh(SYSPY, "-m", "venv", venv)
    sh(venv / "bin/pip", "install", "-q", "--disable-pip-version-check", wheel)
    versions = sh(
        venv / "bin/python",
        "-c",
        "from importlib.metadata import version as v; print(*(f'{d} {v(d)}' for d in ('bootenv', 'typer', 'click', 'tabulate')), sep=', ')",
    ).stdout.strip()
    print(f"wheel venv: {versions}")
    # Nothing from the system: no python3-apt, no Debian typer.
    isolated = subprocess.run([venv / "bin/python", "-c", "import apt_pkg"], capture_output=True)
    assert isolated.returncode != 0, "the fresh venv sees system site packages"

    env = {
        "PATH": f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "LC_ALL": "C.UTF-8",
        "BOOTENV_ZFS": f"fake:{tmp_path / 'pool.json'}",
        "BOOTENV_LOCK": str(tmp_path / "bootenv.lock"),
    }
    bootenv = command([str(venv / "bin/bootenv")], env, tmp_path)
    fake = command([str(venv / "bin/python"), "-m", "bootenv.zfs.fake"], env, tmp_path)
    where = check(command([str(venv / "bin/python"), "-c"], env, tmp_path)(["import bootenv; print(bootenv.__file__)"]), "import")
    assert where.startswith(str(venv)), where  # the wheel's copy, not the tree
    run_scenario(bootenv, fake, tmp_path / "pool.json")
