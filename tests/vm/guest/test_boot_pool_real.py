"""/boot on a second pool, on real OpenZFS (runs INSIDE the VM guest):
the OpenZFS guides' layout, `bpool` made with GRUB's feature set
(`-o compatibility=grub2`) holding BOOT/debian, beside a BE root on the
suite's pool, driven through the CLI in process (libzfs_core backend).

What only the real thing can say: one `zfs snapshot` per pool (lzc refuses
snapshots of two pools in one call), `zfs set canmount=on|noauto` neither
mounts nor unmounts (so activate never mounts a checkpoint's /boot over
the running one), `bootenv mount` puts the boot half at MNT/boot in the
kernel's mount table, and the boot pool's real `free` (with its slop
space) is what refuses a checkpoint before a kernel upgrade could fill it.

The runner guest's own /boot is ext4 and no dataset is mounted there, so
the boot root is named (BOOTENV_BOOT_ROOT, as bootenv.conf's boot_root
would); discovery from /boot is the fake's test (tests/unit/test_boot_pool.py)
and the real boot chain's.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests.clirunner import cli_runner

from bootenv import cli

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
_counter = itertools.count(1)


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def get(name: str, *props: str) -> list[str]:
    return sh("zfs", "get", "-H", "-p", "-o", "value", ",".join(props), name).split("\n")[: len(props)]


def names(base: str) -> list[str]:
    return sorted(sh("zfs", "list", "-H", "-o", "name", "-t", "filesystem,snapshot", "-r", base).split())


def mounted(path: str) -> str | None:
    """The source mounted at `path` in the kernel's table, if any."""
    found = None
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source, where = line.split()[:2]
        if where == path:
            found = source
    return found


class Paired:
    """BASE/ROOT/debian on the suite's pool and bpoolN/BOOT/debian on a
    file-backed boot pool made as the guides make it."""

    def __init__(self, tmp: Path, size: str = "256M", kernels_mib: int = 24):
        n = f"{os.getpid()}{next(_counter)}"
        self.base, self.bpool = f"{POOL}/bp{n}", f"bpool{n}"
        self.root, self.boot = f"{self.base}/ROOT", f"{self.bpool}/BOOT"
        self.image = Path(f"/run/{self.bpool}.img")
        sh("truncate", "-s", size, str(self.image))
        sh("zpool", "create", "-o", "compatibility=grub2", "-O", "mountpoint=none", "-O", "canmount=off", self.bpool, str(self.image))
        sh("zfs", "create", "-o", "canmount=off", "-o", "mountpoint=none", self.boot)
        sh("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", self.base)
        sh("zfs", "create", "-o", "canmount=off", self.root)
        sh("zfs", "create", "-o", "canmount=noauto", "-o", "mountpoint=/", f"{self.root}/debian")
        # The running BE's half is canmount=on as the guides make it; made
        # noauto first so that creating it does not mount it over the guest's /boot.
        sh("zfs", "create", "-o", "canmount=noauto", "-o", "mountpoint=/boot", f"{self.boot}/debian")
        sh("zfs", "set", "canmount=on", f"{self.boot}/debian")
        self.write(f"{self.boot}/debian", "vmlinuz-6.1.0-old", kernels_mib)
        self.lock = tempfile.mktemp(prefix="bootenv-lock-")
        self.running = "debian"

    def write(self, dataset: str, filename: str, mib: int) -> None:
        with tempfile.TemporaryDirectory() as mnt:
            sh("mount", "-t", "zfs", "-o", "zfsutil", dataset, mnt)
            try:
                with open(os.path.join(mnt, filename), "wb") as f:
                    f.write(os.urandom(mib * 1024 * 1024))
            finally:
                sh("umount", mnt)

    def bootenv(self, *args: str):
        env = {
            "BOOTENV_ZFS": "lzc",
            "BOOTENV_BE_ROOT": self.root,
            "BOOTENV_BOOT_ROOT": self.boot,
            "BOOTENV_RUNNING": f"{self.root}/{self.running}",
            "BOOTENV_LOCK": self.lock,
            "BOOTENV_BOOTLOADER": "bootfs",
        }
        return cli_runner().invoke(cli.app, list(args), env=env)

    def ok(self, *args: str) -> str:
        result = self.bootenv(*args)
        assert result.exit_code == 0, f"bootenv {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result.stdout

    def canmounts(self) -> dict[str, str]:
        out = sh("zfs", "list", "-H", "-o", "name,canmount", "-r", "-d", "1", self.boot)
        return {n.rsplit("/", 1)[1]: c for n, c in (line.split("\t") for line in out.splitlines()) if n != self.boot}

    def close(self) -> None:
        subprocess.run(["zpool", "destroy", "-f", self.bpool], capture_output=True)
        self.image.unlink(missing_ok=True)
        subprocess.run(["zfs", "destroy", "-R", "-f", self.base], capture_output=True)


@pytest.fixture
def paired(tmp_path):
    p = Paired(tmp_path)
    yield p
    p.close()


def test_paired_be_create_mount_activate_rename_destroy(paired):
    p = paired
    guest_boot = mounted("/boot")
    outside = names(POOL)
    outside = [n for n in outside if not n.startswith(p.base + "/") and n != p.base]

    # create: both halves, one snapshot per pool
    out = p.ok("create", "ck", "--dry-run")
    assert f"would snapshot {p.root}/debian@ck" in out and f"would snapshot {p.boot}/debian@ck" in out
    p.ok("create", "ck")
    assert get(f"{p.boot}/ck", "origin", "canmount", "mountpoint", "org.bootenv:snapshot") == [f"{p.boot}/debian@ck", "noauto", "/boot", "-"]
    assert get(f"{p.boot}/debian@ck", "org.bootenv:snapshot") == ["yes"]
    rows = json.loads(p.ok("list", "--json"))
    ck = next(r for r in rows if r["name"] == "ck")
    assert ck["boot_dataset"] == f"{p.boot}/ck" and ck["datasets"] == [f"{p.root}/ck", f"{p.boot}/ck"]
    table = p.ok("list")
    assert "boot pool: " in table and f"{p.boot}/NAME" in table, table

    # mount: the boot half at MNT/boot, in the kernel's table
    where = p.ok("mount", "ck").strip()
    try:
        assert mounted(where) == f"{p.root}/ck" and mounted(f"{where}/boot") == f"{p.boot}/ck"
        assert os.path.getsize(f"{where}/boot/vmlinuz-6.1.0-old") == 24 * 1024 * 1024
    finally:
        p.ok("unmount", "ck")
    assert mounted(f"{where}/boot") is None and mounted(where) is None

    # activate: /boot at boot is ck's half; nothing is mounted or unmounted by it
    p.ok("activate", "ck")
    assert p.canmounts() == {"debian": "noauto", "ck": "on"}
    assert get(f"{p.boot}/ck", "origin") == ["-"] and get(f"{p.root}/ck", "origin") == ["-"]
    assert get(f"{p.boot}/debian", "origin") == [f"{p.boot}/ck@ck"]
    assert mounted("/boot") == guest_boot and get(f"{p.boot}/ck", "mounted") == ["no"]

    # back, then rename and destroy the pair
    p.ok("activate", "debian")
    assert p.canmounts() == {"debian": "on", "ck": "noauto"}
    p.ok("rename", "ck", "good")
    assert p.canmounts() == {"debian": "on", "good": "noauto"}
    assert get(f"{p.root}/good", "origin") == [f"{p.root}/debian@ck"]
    p.ok("destroy", "-y", "good")
    assert names(p.bpool) == [p.bpool, p.boot, f"{p.boot}/debian"]
    assert names(p.base) == [p.base, p.root, f"{p.root}/debian"]
    assert [n for n in names(POOL) if not n.startswith(p.base + "/") and n != p.base] == outside


def test_a_checkpoint_that_would_fill_the_boot_pool_is_refused(tmp_path):
    """Each checkpoint keeps the kernels a kernel upgrade then replaces:
    bootenv refuses the checkpoint while the upgrade still fits, never
    letting the boot pool run out (zsys #231)."""
    p = Paired(tmp_path, size="128M", kernels_mib=24)
    try:
        made = []
        for i in range(1, 8):
            result = p.bootenv("create", f"ck{i}")
            if result.exit_code != 0:
                break
            made.append(f"ck{i}")
            # the kernel upgrade: a new kernel in place of the old one
            p.write(f"{p.boot}/debian", "vmlinuz-6.1.0-old", 24)  # rewritten: the checkpoint keeps the old blocks
        else:
            pytest.fail("seven checkpoints of 24M fitted in a 128M boot pool: nothing was refused")
        assert result.exit_code == 4, result.output
        assert f"boot pool {p.bpool} has " in result.stderr and "/boot holds" in result.stderr
        assert len(made) >= 1
        before = names(p.bpool)
        assert f"{p.boot}/ck{len(made) + 1}" not in before and not any(n.endswith(f"@ck{len(made) + 1}") for n in before)
        print(f"MEASURE boot pool 128M, /boot 24M: checkpoints before the refusal: {len(made)}; then zpool free "
              f"{sh('zpool', 'get', '-H', '-p', '-o', 'value', 'free', p.bpool).strip()} bytes, the boot half's available "
              f"{get(f'{p.boot}/debian', 'available')[0]} bytes", flush=True)
    finally:
        p.close()
