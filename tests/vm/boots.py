#!/usr/bin/env python3
"""Real reboots of the root-on-ZFS disk (rootdisk.py): the host side.

    tests/vm/boots.py run          run the whole boot chain, print a summary

QEMU boots the disk ITSELF (no -kernel: SeaBIOS -> GRUB -> zfs-initramfs ->
systemd) with -no-reboot, so every reboot, power-off or panic ends qemu;
the host then starts qemu again on the same per-run overlay (state persists
across the boots of one run) until the guest writes out/done, or the boot
limit. In the guest, bootenv-vmtest.service runs tests/vm/boot/step.py from
the share with the boot number (run_dir/boot-number), which writes
out/boot-N/report.json and reboots or powers off. A boot that never comes up
leaves no report (its console log says why). Per-boot serial logs:
run_dir/boot-N.console.log.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402
import rootdisk  # noqa: E402

RUN_DIR = HERE / ".out" / "boots"
MAX_BOOTS = int(os.environ.get("BOOTENV_VM_MAX_BOOTS", "9"))
BOOT_TIMEOUT = float(os.environ.get("BOOTENV_VM_BOOT_TIMEOUT", "420"))


@dataclass
class Boot:
    n: int
    seconds: float
    timed_out: bool
    console_log: Path
    report: dict | None

    def console(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class BootsRun:
    run_dir: Path
    boots: list[Boot] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    total_seconds: float = 0.0

    def checks(self, scenario: str) -> list[dict]:
        return [c for b in self.boots if b.report for c in b.report.get("checks", []) if c["scenario"] == scenario]


def qemu_argv(disk: Path, run_dir: Path, tree: Path, memory: int = 2048, smp: int = 2) -> list[str]:
    return [
        harness.QEMU, "-accel", "tcg,thread=multi", "-smp", str(smp), "-m", str(memory),
        "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
        "-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe",
        "-virtfs", f"local,path={run_dir},mount_tag=host0,security_model=none,multidevs=remap",
        "-virtfs", f"local,path={tree},mount_tag=host1,security_model=none,multidevs=remap,readonly=on",
        "-device", "virtio-rng-pci",
    ]


def _boot_once(argv: list[str], log_path: Path, timeout: float, live: bool) -> tuple[float, bool]:
    start = time.monotonic()
    timed_out = False
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
                if live:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return time.monotonic() - start, timed_out


def run_boots(*, run_dir: Path = RUN_DIR, tree: Path = REPO, max_boots: int = MAX_BOOTS,
              timeout: float = BOOT_TIMEOUT, live: bool = False, build: bool = True) -> BootsRun:
    start = time.monotonic()
    base = rootdisk.ensure() if build else rootdisk.built_or_fail()
    run_dir, lock = harness._claim_run_dir(Path(run_dir).resolve())
    with lock:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        (run_dir / "out").mkdir(parents=True)
        (run_dir / "tree").mkdir()
        run = BootsRun(run_dir)
        disk = run_dir / "disk.qcow2"  # the per-run overlay; the cache never changes
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(disk)],
                       check=True)
        argv = qemu_argv(disk, run_dir, Path(tree).resolve())
        (run_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
        try:
            for n in range(1, max_boots + 1):
                (run_dir / "boot-number").write_text(f"{n}\n")
                (run_dir / "out" / "next-action").unlink(missing_ok=True)
                log = run_dir / f"boot-{n}.console.log"
                seconds, timed_out = _boot_once(argv, log, timeout, live)
                report_path = run_dir / "out" / f"boot-{n}" / "report.json"
                report = None
                if report_path.is_file():
                    try:
                        report = json.loads(report_path.read_text())
                    except ValueError:
                        report = None
                run.boots.append(Boot(n, seconds, timed_out, log, report))
                what = "report" if report else "NO report"
                root = report and report.get("facts", {}).get("root")
                harness._say(f"boot {n}: {seconds:.0f} s, {what}{f', root {root}' if root else ''}"
                             f"{', TIMED OUT' if timed_out else ''}; console {log}")
                if (run_dir / "out" / "done").is_file():
                    run.done = True
                    break
            if not run.done:
                run.error = f"the guest never said it was done within {max_boots} boots"
        finally:
            if not os.environ.get("BOOTENV_VM_KEEP"):
                disk.unlink(missing_ok=True)
        run.total_seconds = time.monotonic() - start
        harness._say(f"{len(run.boots)} boots in {run.total_seconds:.0f} s")
        return run


def main(argv: list[str]) -> int:
    if argv[:1] != ["run"]:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run = run_boots(live="--quiet" not in argv)
    except (harness.HarnessError, OSError, subprocess.CalledProcessError) as e:
        harness._say(str(e))
        return 125
    bad = 0
    for b in run.boots:
        for c in (b.report or {}).get("checks", []):
            print(f"boot {b.n} {c['scenario']} {'PASS' if c['ok'] else 'FAIL'}: {c['what']}")
            bad += not c["ok"]
        if b.report and b.report.get("error"):
            print(f"boot {b.n} ERROR: {b.report['error']}")
            bad += 1
    if run.error:
        print(run.error)
    return 1 if bad or run.error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
