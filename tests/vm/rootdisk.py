#!/usr/bin/env python3
"""Build (or find) the cached root-on-ZFS disk: a Debian bookworm that boots
under QEMU through a real bootloader (SeaBIOS -> GRUB -> zfs-initramfs ->
systemd), for the real-boot tests (tests/vm/test_boots.py) and for guest
tests that need a real root pool (`harness.py run --rootdisk`).

    tests/vm/rootdisk.py build [LAYOUT]   build unless the cache is current, print the qcow2
    tests/vm/rootdisk.py path [LAYOUT]    print it (exit 1 if not built)

Three layouts (LAYOUTS): `plain` (rootdisk/build.sh: one pool, ext4
/boot/grub, ESP; the GRUB, crash, systemd-boot and retention chains),
`bpool` (rootdisk/build-bpool.sh: the OpenZFS guide's boot pool and
encrypted root pool; the bpool chain) and `ubuntu` (rootdisk/build-ubuntu.sh:
Ubuntu's installer layout; the ubuntu chain), each cached apart.

Made by booting the runner image (image.py) with a blank disk and running
rootdisk/build.sh there: GPT (BIOS boot, ext4 /boot/grub, pool), pool
`rpool` with `rpool/ROOT/debian`, the runner's own root copied in (trimmed),
grub-install + update-grub. Cached as
``$BOOTENV_VM_CACHE/rootdisk-<hash>/root.qcow2``; the hash covers the runner
image's recipe hash, this file and rootdisk/*. bootenv is the Debian
package, installed with apt from the build run's .deb (harness.py: `make
deb`; guest-run.sh installs it in the runner, whose root the disk copies):
that .deb is NOT hashed, the boot tests reinstall the run's .deb on their
first boot (tests/vm/boot/step.py refresh_bootenv). Built in a temp dir
renamed into place, under its own lock; older rootdisk-* dirs are kept
(another checkout may use them).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RECIPE_DIR = HERE / "rootdisk"
sys.path.insert(0, str(HERE))
import image  # noqa: E402

DISK_SIZE = "6G"
LAYOUTS = {"plain": "build.sh", "bpool": "build-bpool.sh", "ubuntu": "build-ubuntu.sh"}
DISK_NAME = "root.qcow2"
BUILD_TIMEOUT = float(os.environ.get("BOOTENV_VM_ROOTDISK_TIMEOUT", "2400"))


def recipe_hash() -> str:
    h = hashlib.sha256(image.recipe_hash().encode() + b"\0")
    files = [Path(__file__).resolve()] + sorted(p for p in RECIPE_DIR.rglob("*") if p.is_file())
    for path in files:
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def disk_dir(layout: str = "plain") -> Path:
    override = os.environ.get("BOOTENV_VM_ROOTDISK") if layout == "plain" else None
    name = f"rootdisk-{recipe_hash()}" if layout == "plain" else f"rootdisk-{layout}-{recipe_hash()}"
    return Path(override) if override else image.cache_root() / name


def is_built(d: Path | None = None) -> bool:
    d = d or disk_dir()
    return (d / DISK_NAME).is_file() and (d / "info.json").is_file()


def _error(msg: str) -> Exception:
    import harness

    return harness.RootDiskError(msg)


def built_or_fail(layout: str = "plain") -> Path:
    d = disk_dir(layout)
    if not is_built(d):
        raise _error(f"no root disk at {d}: run `tests/vm/rootdisk.py build {layout}`")
    return d / DISK_NAME


def build(force: bool = False, layout: str = "plain") -> Path:
    """Build the root disk of `layout` unless the cache is current; return the qcow2."""
    final = disk_dir(layout)
    if is_built(final) and not force:
        return final / DISK_NAME
    if os.environ.get("BOOTENV_VM_ROOTDISK"):
        raise _error(f"BOOTENV_VM_ROOTDISK={final} is not a complete root disk")
    image.ensure()
    root = image.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".rootdisk.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("another root disk build is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(final) and not force:
            return final / DISK_NAME
        for stale in root.glob(".rootdisk-build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return _build_locked(root, final, layout)


def _build_locked(root: Path, final: Path, layout: str) -> Path:
    import harness

    tmp = root / f".rootdisk-build-{final.name}-{os.getpid()}"
    tmp.mkdir()
    start = time.monotonic()
    try:
        raw = tmp / "build.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(raw), DISK_SIZE], check=True)
        log_dir = image.OUT / ("rootdisk" if layout == "plain" else f"rootdisk-{layout}")
        _say(f"building {final.name} in the runner guest (~7 min under TCG); log: {log_dir}")
        result = harness.run_guest(
            f"bash tests/vm/rootdisk/{LAYOUTS[layout]} /dev/vdb",
            run_dir=log_dir, disks=0, extra_drives=[raw],
            timeout=BUILD_TIMEOUT, live=bool(os.environ.get("BOOTENV_VM_LIVE")),
        )
        if result.problem() or result.exit_code != 0:
            tail = "\n".join(result.console.splitlines()[-40:])
            raise _error(f"root disk build failed ({result.problem() or f'exit {result.exit_code}'}); "
                         f"console {result.console_log}:\n{tail}")
        # Compact: the copy leaves no garbage, but convert drops qcow2 slack.
        subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(raw), str(tmp / DISK_NAME)], check=True)
        raw.unlink()
        meta = {
            "recipe": final.name,
            "runner_image": image.recipe_hash(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - start),
            "guest_seconds": round(result.total_seconds),
        }
        (tmp / "info.json").write_text(json.dumps(meta, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    others = sorted(o.name for o in root.glob("rootdisk-*") if o.is_dir() and o.name != final.name and o.name.count("-") == final.name.count("-"))
    if others:
        _say(f"older root disks kept in {root}: {' '.join(others)}")
    size = (final / DISK_NAME).stat().st_blocks * 512
    _say(f"built in {(time.monotonic() - start) / 60:.1f} min, {size / 2**30:.2f} GiB: {final / DISK_NAME}")
    return final / DISK_NAME


def ensure(layout: str = "plain") -> Path:
    """The cached root disk (qcow2) of `layout`, built first when the cache
    is stale. Never write to it: attach an overlay (harness.py does)."""
    return build(force=False, layout=layout)


def _say(msg: str) -> None:
    print(f"bootenv-vm rootdisk: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    import harness

    cmd = argv[0] if argv else "build"
    layout = next((a for a in argv[1:] if not a.startswith("-")), "plain")
    if layout not in LAYOUTS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if cmd == "build":
            print(build(force="--force" in argv, layout=layout))
        elif cmd == "path":
            print(built_or_fail(layout))
        elif cmd == "hash":
            print(recipe_hash())
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (harness.HarnessError, image.ImageError) as e:
        _say(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
