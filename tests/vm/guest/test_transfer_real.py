"""A BE from a build host to a target on real OpenZFS (runs INSIDE the VM
guest): `bootenv send` / `bootenv receive` as separate processes through
files and real pipes, full, then incremental after an "upgrade", then an
incremental cut half-way (`head -c`) and resumed with the token; the
received BE's files, org.bootenv: properties and package manifest equal
the sender's, and `bootenv diff` shows the upgrade.

Two pools stand for the two machines: the suite's `betest` (build host,
BE root betest/bhN/ROOT) and a file-backed pool on /run (target, BE root
betargetN/ROOT), so the whole test is one guest boot. The BE is small
and hand-made (a dpkg status file and a few files, a /var child dataset):
the "upgrade" changes its package set (recorded in its manifest the way a
sandbox upgrade records one) and its files. Figures (stream sizes, the
resume, diff and send -n times) are printed as MEASURE lines.

Imports on the host without pyzfs (the host lists the guest tests).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
REPO = Path(__file__).resolve().parents[3]
_counter = itertools.count(1)

STATUS_V1 = """\
Package: hello
Status: install ok installed
Architecture: amd64
Version: 1.0-1

Package: libfoo
Status: install ok installed
Architecture: amd64
Version: 2.0-3

Package: gone
Status: install ok installed
Architecture: all
Version: 0.9
"""
STATUS_V2 = STATUS_V1.replace("1.0-1", "2.0-1").replace(
    "Package: gone\nStatus: install ok installed\nArchitecture: all\nVersion: 0.9\n",
    "Package: extra\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n",
)


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


def measure(what: str, value) -> None:
    print(f"MEASURE {what}: {value}", flush=True)


class Machine:
    """One side: a BE root and the environment `bootenv` runs with."""

    def __init__(self, be_root: str, tmp: Path, name: str):
        self.be_root = be_root
        self.env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            BOOTENV_ZFS="lzc",
            BOOTENV_BE_ROOT=be_root,
            BOOTENV_BOOTLOADER="bootfs",
            BOOTENV_LOCK=str(tmp / f"{name}.lock"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.env.pop("BOOTENV_RUNNING", None)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bootenv", *args]

    def cmd(self, *args: str) -> str:
        """The shell words of a bootenv command on this machine."""
        envs = " ".join(f"{k}={self.env[k]}" for k in ("PYTHONPATH", "BOOTENV_ZFS", "BOOTENV_BE_ROOT", "BOOTENV_BOOTLOADER", "BOOTENV_LOCK"))
        return f"env {envs} {' '.join(self.argv(*args))}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"bootenv {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc


def shell(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True)


def props(ds: str) -> dict[str, str]:
    out = sh("zfs", "get", "-H", "-p", "-s", "local,received", "-o", "property,value", "all", ds)
    return {k: v for k, v in (line.split("\t", 1) for line in out.splitlines()) if k.startswith("org.bootenv:")}


def file_tree(ds_top: str, where: str) -> dict[str, str]:
    """path -> sha256 of every file of a BE (top and /var), mounted ro."""
    os.makedirs(where, exist_ok=True)
    sh("mount", "-t", "zfs", "-o", "zfsutil,ro", ds_top, where)
    sh("mount", "-t", "zfs", "-o", "zfsutil,ro", f"{ds_top}/var", f"{where}/var")
    try:
        out = sh("bash", "-c", f"cd {where} && find . -type f -print0 | sort -z | xargs -0 sha256sum")
    finally:
        sh("umount", f"{where}/var")
        sh("umount", where)
    return dict(reversed(line.split("  ", 1)) for line in out.splitlines())


@pytest.fixture
def machines(tmp_path):
    n = f"{os.getpid()}-{next(_counter)}"
    build_base = f"{POOL}/bh{n}"
    target_pool = f"betarget{n.replace('-', '')}"
    image = Path(f"/run/{target_pool}.img")
    sh("truncate", "-s", "256M", str(image))
    sh("zpool", "create", "-O", "mountpoint=none", target_pool, str(image))
    for base in (build_base, target_pool):
        if base == build_base:
            sh("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", base)
        sh("zfs", "create", "-o", "canmount=off", "-o", "mountpoint=none", f"{base}/ROOT")
    build = Machine(f"{build_base}/ROOT", tmp_path, "build")
    target = Machine(f"{target_pool}/ROOT", tmp_path, "target")
    yield build, target
    subprocess.run(["zpool", "destroy", "-f", target_pool], capture_output=True)
    image.unlink(missing_ok=True)
    sh("bash", "-c", f"zfs list -H -o name -t snapshot -r {build_base} | xargs -r -n1 zfs release bootenv-send 2>/dev/null; true")
    subprocess.run(["zfs", "destroy", "-r", "-f", build_base], capture_output=True)


def make_web(build: Machine, mnt: str) -> str:
    """The build host's BE `web` (top + /var), mounted at `mnt`, v1."""
    top = f"{build.be_root}/web"
    sh("zfs", "create", "-o", "canmount=noauto", "-o", f"mountpoint={mnt}", top)
    sh("zfs", "create", "-o", "canmount=noauto", f"{top}/var")
    sh("zfs", "mount", top)
    sh("zfs", "mount", f"{top}/var")
    for rel, text in (("etc/version", "v1\n"), ("usr/share/hello/version", "1.0\n"), ("usr/share/gone/file", "gone\n")):
        Path(mnt, rel).parent.mkdir(parents=True, exist_ok=True)
        Path(mnt, rel).write_text(text)
    Path(mnt, "var/lib/dpkg").mkdir(parents=True)
    Path(mnt, "var/lib/dpkg/status").write_text(STATUS_V1)
    Path(mnt, "usr/lib").mkdir(parents=True)
    Path(mnt, "usr/lib/libfoo.so").write_bytes(os.urandom(6 * 1024 * 1024))
    sh("zfs", "set", "org.bootenv:title=web v1", "org.bootenv:kind=manual", top)
    return top


def record_manifest(build: Machine, mnt: str) -> None:
    """What a sandbox upgrade does after apt: the BE's manifest from its
    dpkg status (Engine.record_manifest), in process."""
    code = (
        "from bootenv.engine import Engine; from bootenv.zfs.lzc import LzcZfs; from bootenv.apt.manifest import StatusSource\n"
        f"e = Engine(LzcZfs(), be_root={build.be_root!r}, manifests=StatusSource())\n"
        f"assert e.record_manifest('web', {mnt!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], env=build.env, check=True)


def made_web(build: Machine, mnt: str) -> str:
    """make_web with its manifest recorded, unmounted: ready to send."""
    top = make_web(build, mnt)
    record_manifest(build, mnt)
    sh("zfs", "unmount", f"{top}/var")
    sh("zfs", "unmount", top)
    return top


def upgrade(mnt: str) -> None:
    Path(mnt, "etc/version").write_text("v2\n")
    Path(mnt, "usr/share/hello/version").write_text("2.0\n")
    os.unlink(Path(mnt, "usr/share/gone/file"))
    Path(mnt, "usr/share/extra").mkdir(parents=True)
    Path(mnt, "usr/share/extra/file").write_bytes(os.urandom(3 * 1024 * 1024 // 2))
    os.rename(Path(mnt, "etc/version"), Path(mnt, "etc/release"))
    Path(mnt, "var/lib/dpkg/status").write_text(STATUS_V2)


def test_transfer_full_incremental_interrupted_resumed(machines, tmp_path):
    build, target = machines
    mnt = str(tmp_path / "web")
    top = made_web(build, mnt)

    # -- full, through a file
    t0 = time.monotonic()
    dry = build.run("send", "web", "-n")
    measure("send -n wall seconds (full, snapshot not taken yet)", f"{time.monotonic() - t0:.2f}")
    assert "estimated size" in dry.stderr and "would send" in dry.stdout
    full = tmp_path / "full.stream"
    sent = build.run("send", "web", "-o", str(full))
    snap1 = sent.stderr.split("--from ")[-1].split()[0]
    measure("full stream bytes", full.stat().st_size)
    assert full.read_bytes().startswith(b"BOOTENV-STREAM 1 be=web ")
    got = target.run("receive", "-i", str(full))
    assert "Received boot environment web" in got.stdout
    assert sh("zfs", "get", "-H", "-o", "value", "canmount,mounted", f"{target.be_root}/web").split() == ["noauto", "no"]
    # the base stays on the sender: held and bookmarked
    assert "bootenv-send" in sh("zfs", "holds", "-H", f"{top}@{snap1}")
    assert f"{top}#{snap1}" in sh("zfs", "list", "-H", "-o", "name", "-t", "bookmark", "-r", top)
    # and prune/destroy are told why they cannot take it
    refused = build.run("destroy", "web", "-y", check=False)
    assert refused.returncode == 4 and "bootenv-send keeps the base" in refused.stderr

    # -- the "upgrade" on the build host
    sh("zfs", "mount", top)
    sh("zfs", "mount", f"{top}/var")
    upgrade(mnt)
    record_manifest(build, mnt)
    sh("zfs", "unmount", f"{top}/var")
    sh("zfs", "unmount", top)

    # -- incremental: its size, through a file
    t0 = time.monotonic()
    est = build.run("send", "web", "--from", snap1, "-n")
    measure("send -n wall seconds (incremental)", f"{time.monotonic() - t0:.2f}")
    measure("send -n estimate line", est.stderr.strip().splitlines()[0])
    incr = tmp_path / "incr.stream"
    sent2 = build.run("send", "web", "--from", snap1, "-o", str(incr))
    snap2 = sent2.stderr.split("--from ")[-1].split()[0]
    size = incr.stat().st_size
    measure("incremental stream bytes", size)
    assert size < full.stat().st_size

    # -- the same incremental through a pipe, cut half-way, then resumed
    half = size // 2
    t0 = time.monotonic()
    cut = shell(f"{build.cmd('send', 'web', '--from', snap1)} | head -c {half} | {target.cmd('receive', 'web-2')}")
    measure("interrupted run seconds", f"{time.monotonic() - t0:.2f}")
    assert cut.returncode != 0, cut.stdout + cut.stderr
    assert "bootenv receive --resume" in cut.stderr, cut.stderr
    token = target.run("receive", "--resume", "web-2").stdout.strip()
    assert token and "\t" not in token
    resume_est = build.run("send", "web", "--from", snap1, "--resume", token, "-n")
    measure("resume estimate line", resume_est.stderr.strip().splitlines()[0])
    t0 = time.monotonic()
    resumed = shell(f"{build.cmd('send', 'web', '--from', snap1, '--resume', token)} | {target.cmd('receive', 'web-2')}")
    measure("resumed run seconds", f"{time.monotonic() - t0:.2f}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Received boot environment web-2" in resumed.stdout
    new = f"{target.be_root}/web-2"
    assert sh("zfs", "get", "-H", "-o", "value", "origin", new).strip().startswith(f"{target.be_root}/web@")
    # the hold moved on to the new base on both sides; the old base keeps its bookmark
    assert "bootenv-send" not in sh("zfs", "holds", "-H", f"{top}@{snap1}")
    assert f"{top}#{snap1}" in sh("zfs", "list", "-H", "-o", "name", "-t", "bookmark", "-r", top)
    assert "bootenv-send" in sh("zfs", "holds", "-H", f"{top}@{snap2}")
    assert "bootenv-send" not in sh("zfs", "holds", "-H", f"{target.be_root}/web@{snap1}")
    assert "bootenv-send" in sh("zfs", "holds", "-H", f"{new}@{snap2}")
    # and the superseded base is no residue on either side (sent whole: org.bootenv:sent)
    for side in (build, target):
        assert json.loads(side.run("repair", "-n", "--json").stdout)["found"] == []

    # -- what arrived equals what was sent
    assert file_tree(new, str(tmp_path / "t")) == file_tree(top, str(tmp_path / "b"))
    sent_props, got_props = props(top), props(new)
    for key in ("org.bootenv:title", "org.bootenv:kind", "org.bootenv:manifest"):
        assert got_props.get(key) == sent_props.get(key), key
    parts = [k for k in sent_props if k.startswith("org.bootenv:manifest.")]
    assert parts and all(got_props.get(k) == sent_props[k] for k in parts)
    assert got_props.get("org.bootenv:generation") == "2" and "org.bootenv:received" in got_props

    # -- bootenv diff on the target shows the upgrade
    t0 = time.monotonic()
    diff = target.run("diff", "web", "web-2")
    measure("diff wall seconds (packages)", f"{time.monotonic() - t0:.2f}")
    print(diff.stdout)
    lines = diff.stdout.splitlines()
    assert "  hello 2.0-1" not in lines and "  hello 1.0-1 -> 2.0-1" in lines
    assert "Added:" in lines and "  extra 1.0" in lines and "Removed:" in lines and "  gone 0.9" in lines
    t0 = time.monotonic()
    files = target.run("diff", "web", "web-2", "--files")
    measure("diff --files wall seconds", f"{time.monotonic() - t0:.2f}")
    print(files.stdout)
    assert f"zfs diff {target.be_root}/web@" in files.stdout
    out = files.stdout
    assert "+ /usr/share/extra/file" in out and "- /usr/share/gone/file" in out
    assert "R /etc/version -> /etc/release" in out and "M /var/lib/dpkg/status" in out
    data = json.loads(target.run("diff", "web", "web-2", "--files", "--json").stdout)
    assert data["summary"]["packages"] == {"upgraded": 1, "downgraded": 0, "added": 1, "removed": 1}
    measure("diff summary", out.strip().splitlines()[-1])
