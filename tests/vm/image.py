#!/usr/bin/env python3
"""Build (or find) the cached Debian guest image for the VM tests, of the
release tests/vm/suites.py names (BOOTENV_VM_SUITE: trixie or bookworm).

    tests/vm/image.py build     build unless the cache is current, print its dir
    tests/vm/image.py path      print the cache dir (exit 1 if not built)
    tests/vm/image.py info      print what the image holds (kernel, OpenZFS)

The image is a sparse ext4 disk (image.raw) plus the kernel and initrd pulled
out of it, in ``$BOOTENV_VM_CACHE/<hash>/`` (default /var/cache/bootenv-vm).
The hash covers the recipe: this file and everything in tests/vm/image/.
The project tree itself is NOT in the image (the harness shares it at run
time, and installs bootenv from the run's .deb: guest-run.sh), so code
changes never rebuild it.

Recipe: debootstrap SUITE (minbase) -> tests/vm/image/setup.sh in the
chroot (kernel, OpenZFS 2.3 from bookworm-backports or trixie's contrib, built by dkms for the
guest kernel, python3-apt, pyzfs, Debian's pytest and hypothesis, a local
``file:`` apt repository of bootenv's dependencies as the only apt source)
-> tests/vm/image/bootenv-vm-init as PID 1 -> ``mkfs.ext4 -d`` (no loop
mounts). The build happens in a temporary dir that is renamed into
place only when complete, so an interrupted build never looks valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RECIPE_DIR = HERE / "image"

# The Debian release of the guest (suites.py: bookworm, OpenZFS from its
# backports, or trixie, OpenZFS from its own contrib): part of the recipe
# hash, so each has a cache dir of its own.
from suites import OUT, SUITE, SUITES  # noqa: E402,F401  (OUT: the run dirs, for the harness's modules)
IMAGE_SIZE = "6G"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
INIT_PATH = "/usr/local/sbin/bootenv-vm-init"
# Only what apt needs to bootstrap itself; setup.sh installs the rest so its
# steps are logged and timed separately.
DEBOOTSTRAP_INCLUDE = ["ca-certificates", "debconf", "apt-utils"]


class ImageError(Exception):
    """The image cannot be built or is not there."""


def cache_root() -> Path:
    return Path(os.environ.get("BOOTENV_VM_CACHE") or "/var/cache/bootenv-vm")


def recipe_files() -> list[Path]:
    files = [Path(__file__).resolve()]
    files += sorted(p for p in RECIPE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def recipe_hash() -> str:
    h = hashlib.sha256(SUITE.encode() + b"\0")
    for path in recipe_files():
        h.update(str(path.relative_to(REPO)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def image_dir() -> Path:
    """$BOOTENV_VM_IMAGE (an image dir to use as is), else the cache dir for
    the current recipe."""
    override = os.environ.get("BOOTENV_VM_IMAGE")
    return Path(override) if override else cache_root() / recipe_hash()


def is_built(d: Path | None = None) -> bool:
    d = d or image_dir()
    return all((d / f).is_file() for f in ("image.raw", "vmlinuz", "initrd.img", "info.json"))


def info(d: Path | None = None) -> dict:
    d = d or image_dir()
    if not is_built(d):
        raise ImageError(f"no guest image at {d}: run `make vm-image`")
    return json.loads((d / "info.json").read_text())


def _mirror() -> str:
    return os.environ.get("BOOTENV_VM_MIRROR") or _host_mirror() or DEFAULT_MIRROR


def _host_mirror() -> str | None:
    """The Debian mirror the host's apt uses (read only, never changed)."""
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = src.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            uri = None
            if words[:1] == ["URIs:"] and len(words) > 1:
                uri = words[1]
            elif words[:1] == ["deb"]:
                uri = next((w for w in words[1:] if "://" in w), None)
            if uri and uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def _run(argv: list[str], log, **kw) -> None:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
    if proc.returncode != 0:
        raise ImageError(f"{argv[0]} failed with exit code {proc.returncode}: see {log.name}")


def _sources(mirror: str) -> str:
    security = DEFAULT_SECURITY if "deb.debian.org" in mirror else mirror + "-security"
    backports = f" {SUITE}-backports" if SUITE == "bookworm" else ""  # trixie's OpenZFS is in contrib
    return (
        f"Types: deb\nURIs: {mirror}\n"
        f"Suites: {SUITE} {SUITE}-updates{backports}\n"
        "Components: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\n"
        "Components: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


class _ChrootMounts:
    """/proc, /sys, /dev, /dev/pts mounted in the chroot; always unmounted."""

    def __init__(self, root: Path):
        self.root = root
        self.mounted: list[Path] = []

    def __enter__(self):
        for src, rel, argv in (
            ("proc", "proc", ["mount", "-t", "proc", "proc"]),
            ("sysfs", "sys", ["mount", "-t", "sysfs", "sysfs"]),
            ("/dev", "dev", ["mount", "--bind", "/dev"]),
            ("devpts", "dev/pts", ["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=666", "devpts"]),
        ):
            target = self.root / rel
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(argv + [str(target)], check=True)
            self.mounted.append(target)
        return self

    def __exit__(self, *exc):
        for target in reversed(self.mounted):
            if subprocess.run(["umount", str(target)]).returncode != 0:
                subprocess.run(["umount", "-l", str(target)])
        self.mounted.clear()


def _sigterm_to_exception(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def build(force: bool = False) -> Path:
    """Build the image unless the cache is current. Return its dir."""
    final = image_dir()
    if is_built(final) and not force:
        print(f"bootenv-vm image: up to date at {final}", file=sys.stderr)
        return final
    if os.environ.get("BOOTENV_VM_IMAGE"):
        raise ImageError(f"BOOTENV_VM_IMAGE={final} is not a complete image")
    if SUITE not in SUITES:
        raise ImageError(f"BOOTENV_VM_SUITE={SUITE}: not one of {', '.join(SUITES)}")
    if os.geteuid() != 0:
        raise ImageError("building the guest image needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "mkfs.ext4", "debugfs"):
        if not shutil.which(tool):
            raise ImageError(f"{tool} is missing: run `make vm-deps`")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("bootenv-vm image: another build is running; waiting for it", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(final) and not force:
            print(f"bootenv-vm image: built meanwhile at {final}", file=sys.stderr)
            return final
        # Leftovers of interrupted builds (we hold the lock: none is running).
        for stale in root.glob(".build-*"):
            _remove_tree(stale)
        return _build_locked(root, final)


def _build_locked(root: Path, final: Path) -> Path:
    tmp = root / f".build-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    logpath = root / f"build-{final.name}.log"
    signal.signal(signal.SIGTERM, _sigterm_to_exception)
    start = time.monotonic()
    print(f"bootenv-vm image: building {final.name} (log: {logpath}); ~15 min cold", file=sys.stderr)
    with open(logpath, "w") as log:
        try:
            _build_into(tmp, log, start, final.name)
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            print(f"bootenv-vm image: build FAILED; last lines of {logpath}:", file=sys.stderr)
            log.flush()
            tail = Path(logpath).read_text(errors="replace").splitlines()[-30:]
            print("\n".join(tail), file=sys.stderr)
            raise
        finally:
            _remove_tree(tmp)
    # Older recipes' images stay: another checkout (another branch, another
    # engineer on this machine) may still use them. Remove them by hand.
    others = [o.name for o in root.iterdir()
              if o.is_dir() and o.name != final.name and not o.name.startswith((".build-", "rootdisk-"))]
    if others:
        print(f"bootenv-vm image: older images kept in {root}: {' '.join(sorted(others))}", file=sys.stderr)
    elapsed = time.monotonic() - start
    meta = info(final)
    size = (final / "image.raw").stat().st_blocks * 512
    print(
        f"bootenv-vm image: built in {elapsed / 60:.1f} min: kernel {meta['kernel']}, "
        f"OpenZFS {meta['zfs']}, {size / 2**30:.2f} GiB used of {IMAGE_SIZE} (sparse) at {final}",
        file=sys.stderr,
    )
    return final


def _remove_tree(tmp: Path) -> None:
    """Remove a build dir, never following a still-mounted /dev into the host."""
    if not tmp.exists():
        return
    rootfs = tmp / "rootfs"
    for rel in ("dev/pts", "dev", "sys", "proc"):
        target = rootfs / rel
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)])
            if os.path.ismount(target):
                print(f"bootenv-vm image: {target} still mounted; leaving {tmp}", file=sys.stderr)
                return
    shutil.rmtree(tmp, ignore_errors=True)


def _step(log, start: float, what: str) -> None:
    msg = f"[{(time.monotonic() - start) / 60:5.1f} min] {what}"
    print(f"bootenv-vm image: {msg}", file=sys.stderr)
    log.write(f"=== {msg}\n")
    log.flush()


def _build_into(tmp: Path, log, start: float, recipe: str) -> None:
    rootfs = tmp / "rootfs"
    mirror = _mirror()

    _step(log, start, f"debootstrap {SUITE} from {mirror}")
    _run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_INCLUDE)}",
         SUITE, str(rootfs), mirror],
        log,
    )

    (rootfs / "etc/apt/sources.list").write_text("")
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(_sources(mirror))
    policy = rootfs / "usr/sbin/policy-rc.d"
    # No service may start while the image is built, nor in the test guest
    # (PID 1 is bootenv-vm-init, not systemd).
    policy.write_text("#!/bin/sh\n# bootenv test image: never start services\nexit 101\n")
    policy.chmod(0o755)
    (rootfs / "etc/hostname").write_text("bootenv-vm\n")
    (rootfs / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    shutil.copy(RECIPE_DIR / "setup.sh", rootfs / "tmp/setup.sh")
    init = rootfs / INIT_PATH.lstrip("/")
    init.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(RECIPE_DIR / "bootenv-vm-init", init)
    init.chmod(0o755)
    (rootfs / "mnt/host").mkdir(parents=True, exist_ok=True)

    _step(log, start, "packages in the chroot (kernel, OpenZFS via dkms, python3-apt, pytest, local apt repo)")
    with _ChrootMounts(rootfs):
        _run(["chroot", str(rootfs), "/bin/bash", "/tmp/setup.sh"], log,
             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "SUITE": SUITE})
    (rootfs / "tmp/setup.sh").unlink()
    (rootfs / "etc/resolv.conf").write_text("")  # the guest has no network

    kver = (rootfs / "etc/bootenv-vm-kernel").read_text().strip()
    zfs = (rootfs / "etc/bootenv-vm-zfs").read_text().strip()
    shutil.copy(rootfs / f"boot/vmlinuz-{kver}", tmp / "vmlinuz")
    shutil.copy(rootfs / f"boot/initrd.img-{kver}", tmp / "initrd.img")

    _step(log, start, f"mkfs.ext4 -d ({IMAGE_SIZE} sparse)")
    _run(["mkfs.ext4", "-q", "-F", "-L", "bootenv-vm", "-E", "root_owner=0:0",
          "-d", str(rootfs), str(tmp / "image.raw"), IMAGE_SIZE], log)
    shutil.rmtree(rootfs)
    meta = {
        "kernel": kver,
        "zfs": zfs,
        "suite": SUITE,
        "mirror": mirror,
        "recipe": recipe,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - start),
        "init": INIT_PATH,
    }
    (tmp / "info.json").write_text(json.dumps(meta, indent=2) + "\n")
    _step(log, start, "done")


def ensure() -> Path:
    """The image dir, building the image first when the cache is stale."""
    return build(force=False)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    try:
        if cmd == "build":
            print(build(force="--force" in argv))
        elif cmd == "path":
            if not is_built():
                print(f"not built: {image_dir()}", file=sys.stderr)
                return 1
            print(image_dir())
        elif cmd == "info":
            print(json.dumps(info(), indent=2))
        elif cmd == "hash":
            print(recipe_hash())
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ImageError as e:
        print(f"bootenv-vm image: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bootenv-vm image: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
