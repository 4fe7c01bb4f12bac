#!/usr/bin/env python3
"""Boot the cached guest image under QEMU and run one command in it.

    tests/vm/harness.py run [options] -- CMD...     run CMD in the guest, output live
    tests/vm/harness.py run --pool -- pytest -x tests/contract -k promote

One argument after `--` is a shell script (`run -- 'zpool status; ls /'`),
several are an argv. bootenv itself comes from the run's .deb (`make deb`,
run here unless $BOOTENV_VM_DEB names one): the harness puts it in the share
(debs/) and the guest installs it with apt before CMD (guest-run.sh), so
`bootenv` is /usr/bin/bootenv and `import bootenv` is the installed package.
In the guest, CMD runs as root with cwd = $TREE, a view of the project tree
(shared read-only at /mnt/host/tree) without its bootenv/ (so the tests come
from the tree, the program never), $TREE on PYTHONPATH, $OUT =
/mnt/host/out (writable, copied back: --out), Debian's python3 (pytest,
hypothesis, apt_pkg, libzfs_core), and blank virtio disks /dev/vdb,
/dev/vdc, ... (--disks). --pool first creates the test pool `betest` on
/dev/vdb, as `make test-vm` does.
The exit status is the guest command's (125 if the guest never reported
one: boot failure or timeout; see the console log).

The guest is TCG-emulated (nested KVM hangs here): boot ~30 s, everything
runs a few times slower than on metal.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import image  # noqa: E402  (tests/vm/image.py)

QEMU = "qemu-system-x86_64"
DEFAULT_OUT = image.OUT / "run"
TEST_POOL = "betest"
CREATE_POOL = (
    f"zpool create -f -o ashift=12 -O mountpoint=/{TEST_POOL} -O compression=off {TEST_POOL} /dev/vdb"
)
READY = "BOOTENV-VM-READY"
CMD_START = "BOOTENV-VM-CMD-START"
DONE = "BOOTENV-VM-DONE"


class HarnessError(Exception):
    """The guest cannot be started (no qemu, no image)."""


class RootDiskError(HarnessError):
    """The root-on-ZFS disk cannot be built or is not there (rootdisk.py)."""


@dataclass
class GuestResult:
    """What one guest run left behind."""

    exit_code: int | None  # the guest command's; None: the guest never reported one
    console: str  # the whole serial console, \r stripped
    run_dir: Path  # the share: console.log, cmd.sh, out/
    boot_seconds: float | None  # qemu start -> guest ready to run the command
    total_seconds: float
    timed_out: bool
    qemu_returncode: int | None

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "out"

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    def problem(self) -> str | None:
        """Why the run itself failed (not the command), or None."""
        if self.timed_out:
            return f"the guest timed out after {self.total_seconds:.0f} s (qemu killed)"
        if self.boot_seconds is None:
            return f"the guest never became ready (qemu exit {self.qemu_returncode})"
        if self.exit_code is None:
            return f"the guest never reported an exit code (qemu exit {self.qemu_returncode})"
        return None


def qemu_argv(img: Path, run_dir: Path, tree: Path, disks: list[Path], memory: int, smp: int,
              extra: list[Path] = ()) -> list[str]:
    meta = image.info(img)
    append = (
        f"root=/dev/vda rw console=ttyS0 init={meta['init']} panic=-1 "
        "quiet loglevel=3 systemd.show_status=0 net.ifnames=0"
    )
    argv = [
        QEMU,
        "-accel", "tcg,thread=multi",
        "-smp", str(smp),
        "-m", str(memory),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", "stdio",
        "-kernel", str(img / "vmlinuz"),
        "-initrd", str(img / "initrd.img"),
        "-append", append,
        # snapshot=on: writes go to a throwaway overlay, the cache never changes.
        "-drive", f"file={img / 'image.raw'},if=virtio,format=raw,snapshot=on",
        "-virtfs", f"local,path={run_dir},mount_tag=host0,security_model=none,multidevs=remap",
        "-virtfs", f"local,path={tree},mount_tag=host1,security_model=none,multidevs=remap,readonly=on",
        "-device", "virtio-rng-pci",
    ]
    for disk in [*disks, *extra]:
        argv += ["-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe"]
    return argv


def deb_version(tree: Path = REPO) -> str:
    """The package version debian/changelog names (as the Makefile reads it)."""
    first = (Path(tree) / "debian/changelog").read_text().splitlines()[0]
    return first.split("(", 1)[1].split(")", 1)[0]


def ensure_deb(tree: Path = REPO) -> Path:
    """The .deb the guest installs: $BOOTENV_VM_DEB, else `make deb` in the
    tree (a no-op when dist/ is current; the Makefile's VM targets run it
    first anyway) and its dist/bootenv_VERSION_all.deb. One `make deb` at
    a time per tree, across threads (schedule.py) and processes (two
    harness runs at once would rebuild build/deb/ under each other)."""
    if os.environ.get("BOOTENV_VM_DEB"):
        return _ensure_deb(tree)
    (Path(tree) / "dist").mkdir(exist_ok=True)
    with open(Path(tree) / "dist" / ".make-deb.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # an open file each: threads wait for each other too
        return _ensure_deb(tree)


def _ensure_deb(tree: Path) -> Path:
    given = os.environ.get("BOOTENV_VM_DEB")
    if given:
        deb = Path(given).resolve()
        if not deb.is_file():
            raise HarnessError(f"BOOTENV_VM_DEB={given} is not a file")
        return deb
    tree = Path(tree).resolve()
    proc = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(tree), "deb"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deb = tree / "dist" / f"bootenv_{deb_version(tree)}_all.deb"
    if proc.returncode != 0 or not deb.is_file():
        raise HarnessError(f"`make deb` failed (exit {proc.returncode}): no {deb}\n{proc.stdout[-3000:]}")
    if proc.stdout.strip():
        _say(f"make deb: {proc.stdout.strip().splitlines()[-1]}")
    return deb


def guest_disk(index: int) -> str:
    """The guest device of the index-th disk after the root image (0 -> /dev/vdb)."""
    return "/dev/vd" + chr(ord("b") + index)


def run_guest(
    command: str | list[str],
    *,
    run_dir: Path = DEFAULT_OUT,
    tree: Path = REPO,
    disks: int = 1,
    disk_size: str = "4G",
    timeout: float = 1200,
    live: bool = False,
    memory: int = 3072,
    smp: int = 2,
    build: bool = True,
    rootdisk: bool = False,
    extra_drives: list[Path] = (),
    deb: Path | None = None,
) -> GuestResult:
    """Boot the guest once and run `command` (a shell script string, or an
    argv) in it. `run_dir` is emptied and becomes the writable share; the
    guest's $OUT is run_dir/out. The console goes to run_dir/console.log
    (and to stdout when `live`). Kill qemu after `timeout` seconds.

    `rootdisk`: also attach a fresh qcow2 overlay of the cached root-on-ZFS
    disk (tests/vm/rootdisk.py; the cache never changes) as the LAST virtio
    disk, its device exported to the command as $BOOTENV_ROOTDISK.
    `extra_drives`: qcow2 files attached as they are after the blank disks
    (the root disk build writes one). `deb`: the bootenv .deb the guest
    installs first (default: ensure_deb(tree))."""
    if not shutil.which(QEMU):
        raise HarnessError(f"{QEMU} is missing: run `make vm-deps`")
    if build:
        img = image.ensure()
    else:
        img = image.image_dir()
        if not image.is_built(img):
            raise HarnessError(f"no guest image at {img}: run `make vm-image`")
    deb = Path(deb) if deb else ensure_deb(tree)
    script = command if isinstance(command, str) else shlex.join(command)
    base = None
    if rootdisk:
        import rootdisk as rootdisk_mod  # tests/vm/rootdisk.py

        base = rootdisk_mod.ensure() if build else rootdisk_mod.built_or_fail()
        dev = guest_disk(disks + len(extra_drives))
        script = f"export BOOTENV_ROOTDISK={dev}\n{script}"

    run_dir, lock = _claim_run_dir(Path(run_dir).resolve())
    with lock:
        return _run_in(img, script, run_dir, Path(tree).resolve(), disks, disk_size, timeout, live, memory, smp,
                       list(extra_drives), base, deb)


def _claim_run_dir(run_dir: Path):
    """Lock run_dir for this run; if another run (same checkout, another
    engineer) holds it, use run_dir-PID instead of clobbering it."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    for candidate in (run_dir, run_dir.with_name(f"{run_dir.name}-{os.getpid()}")):
        lock = open(candidate.with_name(candidate.name + ".lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            _say(f"{candidate} is in use by another run")
            continue
        return candidate, lock
    raise HarnessError(f"cannot lock a run dir next to {run_dir}")


def _run_in(img, script, run_dir, tree, disks, disk_size, timeout, live, memory, smp,
            extra_drives=(), rootdisk_base=None, deb=None) -> GuestResult:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "out").mkdir(parents=True)
    (run_dir / "tree").mkdir()  # mount point for the tree share
    if deb is not None:  # installed by guest-run.sh
        (run_dir / "debs").mkdir()
        shutil.copy(deb, run_dir / "debs" / Path(deb).name)
    shutil.copy(HERE / "guest-run.sh", run_dir / "run.sh")
    (run_dir / "cmd.sh").write_text(script + "\n")

    with tempfile.TemporaryDirectory(prefix="bootenv-vm-disks-", dir=os.environ.get("TMPDIR", "/var/tmp")) as dtmp:
        disk_paths = []
        for i in range(disks):
            path = Path(dtmp) / f"disk{i + 1}.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), disk_size], check=True)
            disk_paths.append(path)
        extra = [Path(p) for p in extra_drives]
        if rootdisk_base is not None:
            overlay = Path(dtmp) / "rootdisk-overlay.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                            "-b", str(rootdisk_base), str(overlay)], check=True)
            extra.append(overlay)
        argv = qemu_argv(img, run_dir, tree, disk_paths, memory, smp, extra)
        (run_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
        return _boot(argv, run_dir, timeout, live)


@dataclass
class QemuRun:
    """What one qemu process did: wall seconds, whether the timeout ended
    it, its exit status."""

    seconds: float
    timed_out: bool
    returncode: int | None


def stream_qemu(argv: list[str], log_path: Path, timeout: float, on_line=None) -> QemuRun:
    """Run qemu (serial console on stdout) until it exits or `timeout`:
    the console goes to `log_path` (CRs dropped) as it comes, and each
    complete line to `on_line(line)`. qemu is always stopped on the way out."""
    start = time.monotonic()
    timed_out = False
    pending = b""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            fd = proc.stdout.fileno()
            while True:
                left = start + timeout - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunk = chunk.replace(b"\r", b"")
                log.write(chunk)
                log.flush()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if on_line:
                    for raw in lines:
                        on_line(raw.decode(errors="replace"))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if pending and on_line:
                on_line(pending.decode(errors="replace"))
    return QemuRun(time.monotonic() - start, timed_out, proc.returncode)


# A guest whose kernel dies before its init runs has touched nothing of
# bootenv's: no pool was imported, no step or command ran. Under TCG with
# two vCPUs that happens, rarely, with no cause in the guest (CI, trixie's
# 6.12: "Fatal exception in interrupt" 3 s in, RIP in the middle of an
# instruction the kernel patches at boot -- a cross-modifying-code race of
# multi-threaded TCG). Such a boot is run again (boots.py: at most twice a
# chain; a guest run: once), and said so; a panic after init started (a
# dead BE's "Attempted to kill init", anything bootenv could cause) is
# never retried. If GRUB had already used up a one-shot, the second boot
# takes the default and the chain's checks fail, so a retry can fail a run
# but never pass one.
def emulator_fault(console_log: Path) -> bool:
    try:
        text = console_log.read_text(errors="replace")
    except OSError:
        return False
    panic = text.find("Kernel panic")
    return panic >= 0 and "Attempted to kill init" not in text and " as init process" not in text[:panic]


def _boot(argv: list[str], run_dir: Path, timeout: float, live: bool) -> GuestResult:
    result = _boot_once(argv, run_dir, timeout, live)
    if result.boot_seconds is None and emulator_fault(result.console_log):
        result.console_log.rename(run_dir / "console.emulator-fault.log")
        _say(f"the guest kernel died before its init ran ({run_dir / 'console.emulator-fault.log'}): booting it again")
        result = _boot_once(argv, run_dir, timeout, live)
    return result


def _boot_once(argv: list[str], run_dir: Path, timeout: float, live: bool) -> GuestResult:
    start = time.monotonic()
    seen = {"ready_at": None, "ended": False}

    def on_line(line: str) -> None:
        if seen["ready_at"] is None and READY in line:
            seen["ready_at"] = time.monotonic() - start
            _say(f"guest ready after {seen['ready_at']:.1f} s")
        if "BOOTENV-VM-CMD-END" in line:
            seen["ended"] = True
        # Live: the boot and the command; not the markers nor the power-off chatter.
        if live and not seen["ended"] and not line.startswith("BOOTENV-VM-"):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    qemu = stream_qemu(argv, run_dir / "console.log", timeout, on_line)
    ready_at, timed_out = seen["ready_at"], qemu.timed_out
    total = time.monotonic() - start
    code_file = run_dir / "out" / "exit-code"
    exit_code = None
    try:
        exit_code = int(code_file.read_text().strip())
    except (OSError, ValueError):
        pass
    result = GuestResult(
        exit_code=exit_code,
        console=(run_dir / "console.log").read_text(errors="replace"),
        run_dir=run_dir,
        boot_seconds=ready_at,
        total_seconds=total,
        timed_out=timed_out,
        qemu_returncode=qemu.returncode,
    )
    run_s = f"{total - ready_at:.1f} s" if ready_at is not None else "-"
    _say(
        f"guest exit code {exit_code}; boot {ready_at and f'{ready_at:.1f} s' or '-'}, "
        f"command+poweroff {run_s}, total {total:.1f} s; console: {run_dir / 'console.log'}"
    )
    if result.problem():
        _say("PROBLEM: " + result.problem())
    return result


def _say(msg: str) -> None:
    print(f"bootenv-vm: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests/vm/harness.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a command in the guest")
    run.add_argument("--disks", type=int, default=1, help="blank virtio disks /dev/vdb... (default 1)")
    run.add_argument("--disk-size", default="4G")
    run.add_argument("--pool", action="store_true", help=f"create pool {TEST_POOL} on /dev/vdb first")
    run.add_argument("--rootdisk", action="store_true",
                     help="attach an overlay of the cached root-on-ZFS disk last ($BOOTENV_ROOTDISK in the guest)")
    run.add_argument("--timeout", type=float, default=1200)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run dir (default {DEFAULT_OUT})")
    run.add_argument("--tree", type=Path, default=REPO, help="project tree to share (default: this checkout)")
    run.add_argument("--quiet", action="store_true", help="do not echo the console")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run: a command is needed after --")
    script = command[0] if len(command) == 1 else shlex.join(command)
    if args.pool:
        if args.disks < 1:
            parser.error("--pool needs a disk")
        script = f"{CREATE_POOL} || exit 121\n{script}"
    try:
        result = run_guest(script, run_dir=args.out, tree=args.tree, disks=args.disks,
                           disk_size=args.disk_size, timeout=args.timeout, live=not args.quiet,
                           rootdisk=args.rootdisk)
    except (HarnessError, image.ImageError, RootDiskError) as e:
        _say(str(e))
        return 125
    return 125 if result.exit_code is None else result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
