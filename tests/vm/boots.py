#!/usr/bin/env python3
"""Real reboots of the root-on-ZFS disk (rootdisk.py): the host side.

    tests/vm/boots.py run [grub] [systemd-boot] [--quiet]
                                   run the boot chains (default both), print a summary
    BOOTENV_VM_ONLY=METHOD tests/vm/boots.py run grub
                                   boot once and run only that step method
                                   (e.g. `quick`: the sandbox scenarios);
                                   METHOD1,METHOD2,...: boot N runs method N
                                   (e.g. the retention series and its
                                   rollbacks from the disk's own BE)

QEMU boots the disk ITSELF, no -kernel, through one of two real chains:
  grub          SeaBIOS -> GRUB (i386-pc) -> zfs-initramfs -> systemd
  systemd-boot  OVMF (UEFI, Debian's ovmf) -> systemd-boot on the ESP ->
                zfs-initramfs -> systemd; the EFI variables (one-shot,
                default) live in a per-run copy of OVMF's NVRAM
with -no-reboot, so every reboot, power-off or panic ends qemu; the host
then starts qemu again on the same per-run overlay (state persists across
the boots of one run) until the guest writes out/done, or the boot limit.
In the guest, bootenv-vmtest.service runs tests/vm/boot/step.py from the
share with the chain (run_dir/chain) and the boot number
(run_dir/boot-number); the step writes out/boot-N/report.json and reboots
or powers off. A boot that never comes up leaves no report (its console
log says why). Per-boot serial logs: run_dir/boot-N.console.log, run dirs
tests/vm/.out/boots/CHAIN.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402
import image  # noqa: E402
import rootdisk  # noqa: E402

RUN_DIR = image.OUT / "boots"  # one run dir per chain below it
# One boot with its step: a boot is 50-90 s under TCG, a step that takes
# checkpoints runs update-grub (~50 s) for each.
BOOT_TIMEOUT = float(os.environ.get("BOOTENV_VM_BOOT_TIMEOUT", "900"))


# A guest line asking the host to cut the power NOW (tests/vm/boot/power.py):
# QEMU's `system_reset` over the monitor, which with -no-reboot ends qemu
# like a reboot would -- the guest's RAM (dirty ZFS transaction groups,
# page cache) is lost, nothing is synced or unmounted: a power loss.
POWER_CUT = "BOOTENV-VM-POWER-CUT"


@dataclass
class Boot:
    n: int
    seconds: float
    timed_out: bool
    console_log: Path
    report: dict | None
    power_cut: bool = False  # the host cut this boot's power on the guest's request (qemu ended by it)

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
    emulator_faults: int = 0  # boots run again because the guest kernel died before init (emulator_fault)

    def checks(self, scenario: str) -> list[dict]:
        return [c for b in self.boots if b.report for c in b.report.get("checks", []) if c["scenario"] == scenario]


# Debian's `ovmf` (make vm-deps): the firmware, and the NVRAM template each
# UEFI run copies (the EFI variables -- systemd-boot's one-shot and default --
# persist across the boots of one run, as on a real machine).
OVMF_CODE = Path(os.environ.get("BOOTENV_VM_OVMF_CODE", "/usr/share/OVMF/OVMF_CODE_4M.fd"))
OVMF_VARS = Path(os.environ.get("BOOTENV_VM_OVMF_VARS", "/usr/share/OVMF/OVMF_VARS_4M.fd"))
# The chains (tests/vm/boot/step.py runs the one named in run_dir/chain):
# how the disk is booted, and the most boots the chain takes.
CHAINS = {"grub": ("bios", 12), "systemd-boot": ("uefi", 6), "crash": ("bios", 5), "retention": ("bios", 6),
          "bpool": ("bios", 3), "ubuntu": ("bios", 3), "grubhome": ("bios", 4)}
# The root disk a chain boots (rootdisk.py LAYOUTS): `plain` unless named here.
CHAIN_DISKS = {"bpool": "bpool", "ubuntu": "ubuntu"}


# A boot the emulator killed before the guest's init ran is run again from
# the state it started from: the firmware and the bootloader may have
# written already (GRUB clears a one-shot in its environment block,
# systemd-boot deletes LoaderEntryOneShot), and a trial boot run again
# without its one-shot would boot the default instead (CI, 2026-12-07).
BOOT_STATE = "before-boot"  # an internal snapshot of the run's overlay


def keep_boot_state(disk: Path, run_dir: Path) -> None:
    """The overlay (an internal qcow2 snapshot, the last boot's replaced)
    and the EFI variables, as they are before a boot."""
    subprocess.run(["qemu-img", "snapshot", "-d", BOOT_STATE, str(disk)], capture_output=True)  # none before boot 1
    subprocess.run(["qemu-img", "snapshot", "-c", BOOT_STATE, str(disk)], check=True)
    if (run_dir / "efivars.fd").is_file():
        shutil.copyfile(run_dir / "efivars.fd", run_dir / "efivars.fd.before-boot")


def restore_boot_state(disk: Path, run_dir: Path) -> None:
    subprocess.run(["qemu-img", "snapshot", "-a", BOOT_STATE, str(disk)], check=True)
    if (run_dir / "efivars.fd.before-boot").is_file():
        shutil.copyfile(run_dir / "efivars.fd.before-boot", run_dir / "efivars.fd")


def qemu_argv(disk: Path, run_dir: Path, tree: Path, firmware: str = "bios",
              memory: int = 2048, smp: int = 2) -> list[str]:
    argv = [
        harness.QEMU, "-accel", "tcg,thread=multi", "-smp", str(smp), "-m", str(memory),
        "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
        "-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe",
        "-virtfs", f"local,path={run_dir},mount_tag=host0,security_model=none,multidevs=remap",
        "-virtfs", f"local,path={tree},mount_tag=host1,security_model=none,multidevs=remap,readonly=on",
        "-device", "virtio-rng-pci",
        "-monitor", f"unix:{run_dir / 'monitor.sock'},server=on,wait=off",
    ]
    if firmware == "uefi":
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={run_dir / 'efivars.fd'}",
        ]
    return argv


# How often a boot whose kernel died before init is booted again (harness.emulator_fault).
EMULATOR_FAULT_RETRIES = 2


def _echo(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cut_power(monitor: Path, wait: float = 20.0) -> bool:
    """`system_reset` on QEMU's human monitor at `monitor`: the guest stops
    where it is (no sync), and -no-reboot makes qemu exit. Return whether
    it did: the monitor's connection ends (qemu gone) within `wait`
    seconds. The command is sent after the monitor's prompt and the
    connection kept open until then: a command on a connection closed at
    once may never be read (measured: the guest ran on)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        s.connect(str(monitor))
        deadline = time.monotonic() + 5
        seen = b""
        while b"(qemu)" not in seen and time.monotonic() < deadline:
            try:
                seen += s.recv(4096)
            except socket.timeout:
                pass
        s.sendall(b"system_reset\n")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if not s.recv(4096):
                    return True  # EOF: qemu ended with the reset
            except socket.timeout:
                continue
            except OSError:
                return True  # the connection went with qemu
        return False


def console_watcher(monitor: Path, live: bool, seen: dict):
    """The per-line console hook of one boot: echo it when `live`, and cut
    the power when the guest asks for it (POWER_CUT; once per boot)."""
    def on_line(line: str) -> None:
        if live:
            _echo(line)
        if POWER_CUT in line and "power_cut" not in seen:
            harness._say("the guest asked for a power cut: system_reset")
            try:
                seen["power_cut"] = cut_power(monitor)
            except OSError as e:
                seen["power_cut"] = False
                harness._say(f"power cut failed: {e}")
            if not seen["power_cut"]:
                harness._say("qemu did not end after system_reset: no power cut")
    return on_line


def run_boots(chain: str = "grub", *, run_dir: Path | None = None, tree: Path = REPO,
              max_boots: int | None = None, timeout: float = BOOT_TIMEOUT, live: bool = False,
              build: bool = True) -> BootsRun:
    """Boot the root disk through `chain`'s bootloader again and again
    until the guest says it is done (see the module's doc)."""
    firmware, chain_boots = CHAINS[chain]
    max_boots = max_boots or int(os.environ.get("BOOTENV_VM_MAX_BOOTS", chain_boots))
    start = time.monotonic()
    if firmware == "uefi" and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        raise harness.HarnessError(f"no UEFI firmware ({OVMF_CODE}, {OVMF_VARS}): run `make vm-deps` (Debian's ovmf)")
    layout = CHAIN_DISKS.get(chain, "plain")
    base = rootdisk.ensure(layout) if build else rootdisk.built_or_fail(layout)
    deb = harness.ensure_deb(tree)  # the first boot installs it (step.py refresh_bootenv)
    run_dir, lock = harness._claim_run_dir(Path(run_dir or RUN_DIR / chain).resolve())
    with lock:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        (run_dir / "out").mkdir(parents=True)
        (run_dir / "tree").mkdir()
        (run_dir / "chain").write_text(chain + "\n")
        (run_dir / "debs").mkdir()
        shutil.copy(deb, run_dir / "debs" / deb.name)
        if os.environ.get("BOOTENV_VM_ONLY"):  # debugging: step methods, one a boot, then done
            (run_dir / "only").write_text(os.environ["BOOTENV_VM_ONLY"] + "\n")
        if firmware == "uefi":
            shutil.copyfile(OVMF_VARS, run_dir / "efivars.fd")
        run = BootsRun(run_dir)
        disk = run_dir / "disk.qcow2"  # the per-run overlay; the cache never changes
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(disk)],
                       check=True)
        argv = qemu_argv(disk, run_dir, Path(tree).resolve(), firmware)
        (run_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
        try:
            for n in range(1, max_boots + 1):
                (run_dir / "boot-number").write_text(f"{n}\n")
                (run_dir / "out" / "next-action").unlink(missing_ok=True)
                log = run_dir / f"boot-{n}.console.log"
                while True:
                    seen: dict = {}
                    keep_boot_state(disk, run_dir)
                    qemu = harness.stream_qemu(argv, log, timeout, console_watcher(run_dir / "monitor.sock", live, seen))
                    if run.emulator_faults >= EMULATOR_FAULT_RETRIES or not harness.emulator_fault(log):
                        break
                    run.emulator_faults += 1
                    kept = log.rename(log.with_suffix(".emulator-fault.log"))
                    restore_boot_state(disk, run_dir)
                    harness._say(f"{chain} boot {n}: the guest kernel died before its init ran ({kept}): booting it again "
                                 "from the disk and EFI variables as they were before it")
                report_path = run_dir / "out" / f"boot-{n}" / "report.json"
                report = None
                if report_path.is_file():
                    try:
                        report = json.loads(report_path.read_text())
                    except ValueError:
                        report = None
                run.boots.append(Boot(n, qemu.seconds, qemu.timed_out, log, report, bool(seen.get("power_cut"))))
                what = "report" if report else "NO report"
                root = report and report.get("facts", {}).get("root")
                harness._say(f"{chain} boot {n}: {qemu.seconds:.0f} s, {what}{f', root {root}' if root else ''}"
                             f"{', POWER CUT' if seen.get('power_cut') else ''}"
                             f"{', TIMED OUT' if qemu.timed_out else ''}; console {log}")
                if (run_dir / "out" / "done").is_file():
                    run.done = True
                    break
                if qemu.timed_out:  # what it armed is unknown: the later boots prove nothing
                    run.error = (f"boot {n} timed out after {timeout:.0f} s (the machine may be loaded; "
                                 f"BOOTENV_VM_BOOT_TIMEOUT sets the limit): boots after it were not run")
                    break
            if not run.done and not run.error:
                run.error = f"the guest never said it was done within {max_boots} boots"
        finally:
            if not os.environ.get("BOOTENV_VM_KEEP"):
                disk.unlink(missing_ok=True)
        run.total_seconds = time.monotonic() - start
        harness._say(f"{chain}: {len(run.boots)} boots in {run.total_seconds:.0f} s")
        return run


def main(argv: list[str]) -> int:
    chains = [a for a in argv[1:] if not a.startswith("-")] or list(CHAINS)
    if argv[:1] != ["run"] or not set(chains) <= set(CHAINS):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        runs = [run_boots(chain, live="--quiet" not in argv) for chain in chains]
    except (harness.HarnessError, OSError, subprocess.CalledProcessError) as e:
        harness._say(str(e))
        return 125
    bad = 0
    for chain, run in zip(chains, runs):
        for b in run.boots:
            for c in (b.report or {}).get("checks", []):
                print(f"{chain} boot {b.n} {c['scenario']} {'PASS' if c['ok'] else 'FAIL'}: {c['what']}")
                bad += not c["ok"]
            if b.report and b.report.get("error"):
                print(f"{chain} boot {b.n} ERROR: {b.report['error']}")
                bad += 1
        if run.error:
            print(f"{chain}: {run.error}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
