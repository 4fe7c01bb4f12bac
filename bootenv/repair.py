"""`bootenv repair`: find what a killed bootenv left (a crash, kill -9,
power loss between two steps of a plan) and fix it, or say why not.

Everything is decided from ONE listing of the BE root with snapshots (as
every plan is), and done as ONE plan, so `-n` shows exactly what happens.
Only what bootenv made is touched: BEs it marked (org.bootenv:state),
snapshots it marked (org.bootenv:snapshot=yes) that nothing depends on,
its own properties on the BE root, the bootfs and the bootloader default
when they name a BE that is gone. Found, in the plan's order:

- a bootfs or bootloader default (or one-shot) naming a missing or
  not-whole BE: the running BE boots next again (the next boot is always
  a BE that exists and is whole);
- a trial boot of a BE that is gone: the trial is cleared;
- boot entries the driver keeps for BEs that are gone (systemd-boot's
  loader entries, with the kernels only they named): removed;
- a BE `pending` (its create, or the apt run in a sandbox clone, never
  finished): discarded; a BE `destroying`: its destroy is finished (both
  are destroy plans: dependants are promoted, nothing else is lost);
- where /boot is paired (bpool/BOOT/NAME): a boot half whose paired
  rename was interrupted is renamed after its BE; canmount made to match
  the next boot (only its boot half and datasets mount by themselves);
- bootenv's snapshots no clone depends on and nobody holds (a create
  killed after its snapshot, a destroy killed before its origin went),
  except those `bootenv send` sent whole (org.bootenv:sent: bases of
  increments, their hold moved on to a newer one);
- the BE root's record of an interrupted operation: cleared last.

Explained, not changed: a checkpoint left `unfinished-apt` (whole: what to
roll back to), a BE mounted where `bootenv mount` puts them (the admin's),
a half-done promotion (activate killed between promote and bootfs: both
BEs are whole and the old one still boots; re-run activate), a bootfs the
bootloader's default disagrees with (both whole: either boots), a lock file
naming a process that is gone (flock died with it: nothing to undo).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from .engine import RESIDUE_HINT as HINT, Engine, Scan  # noqa: F401 (HINT: for callers)
from .errors import BootenvError
from .model import (
    NOT_WHOLE,
    PROP_OPERATION,
    PROP_SENT,
    PROP_SNAPSHOT,
    PROP_TRIAL_BE,
    STATE_PENDING,
    STATE_UNFINISHED_APT,
)
from .plan import Kind, Plan
from .trial import ROOT_PROPS, TRIAL_PROPS
from .zfs.base import parent_of



@dataclass
class Report:
    """What repair found: `plan` fixes what can be fixed; `explained` are
    lines for what it leaves alone, and why."""

    plan: Plan
    found: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "found": self.found,
            "actions": [s.text for s in self.plan.steps],
            "explained": self.explained,
        }


def repair(engine: Engine, lock_text: Optional[str] = None) -> Report:
    """Given the engine (and what the lock file said before we took it),
    return the Report: nothing has changed yet."""
    scan = engine.scan(snapshots=True, extra_props=(*ROOT_PROPS, PROP_SENT))
    plan = Plan("Repair what an interrupted bootenv left")
    report = Report(plan)
    bes = {be.name: be for be in engine.list(scan)}
    # First: a repair killed in turn leaves residue that says so.
    plan.add(f"record 'repair' on {engine.be_root} (until done)", lambda: engine.zfs.set_props(engine.be_root, {PROP_OPERATION: "repair"}), kind=Kind.SET_PROPS)
    running = next((be for be in bes.values() if be.running), None)
    _next_boot(engine, scan, report, bes, running)
    _trial(engine, scan, report)
    for name in engine.bootloader.stray_entries(set(bes)):
        report.found.append(f"a {engine.bootloader.name} boot entry for {name}, which does not exist")
        report.plan.add(f"remove the {engine.bootloader.name} boot entry of {name}", lambda n=name: engine.bootloader.post_destroy(n), kind=Kind.BOOTLOADER)
    doomed = _broken_bes(engine, scan, report, bes)
    _lone_boot_halves(engine, scan, report, bes)
    _boot_mounts(engine, scan, report)
    _stray_snapshots(engine, scan, report, doomed)
    _explain(engine, scan, report, bes, lock_text)
    root = scan.datasets.get(engine.be_root)
    operation = root.user(PROP_OPERATION) if root is not None else None
    if operation:
        report.found.append(f"an interrupted '{operation}' recorded on {engine.be_root}")
    if len(plan.steps) == 1 and not operation:
        plan.steps.clear()  # nothing to do: not even the record
        plan.summary = "Repair: nothing to repair"
    else:
        plan.add(f"clear {PROP_OPERATION} on {engine.be_root}", lambda: engine.zfs.inherit(engine.be_root, PROP_OPERATION), kind=Kind.SET_PROPS)
    return report


def _whole(be) -> bool:
    return be is not None and be.state not in NOT_WHOLE


def _next_boot(engine: Engine, scan: Scan, report: Report, bes: dict, running) -> None:
    """The next boot must be a BE that exists and is whole: else the running one."""
    root = engine.be_root + "/"
    by_dataset = {be.dataset: be for be in bes.values()}
    bad = []
    if scan.bootfs and scan.bootfs.startswith(root) and not _whole(by_dataset.get(scan.bootfs)):
        bad.append(f"bootfs names {scan.bootfs}, which " + ("does not exist" if scan.bootfs not in by_dataset else "is not whole"))
    if scan.next_boot and scan.next_boot != scan.bootfs and not _whole(by_dataset.get(scan.next_boot)):
        bad.append(f"the {engine.bootloader.name} next boot {scan.next_boot} " + ("does not exist" if scan.next_boot not in by_dataset else "is not whole"))
    if not bad:
        return
    report.found += bad
    if running is None:
        report.explained.append("no running boot environment to fall back to: choose one with 'bootenv activate'")
        return
    if engine.bootloader.oneshot:
        report.plan.add(f"clear the {engine.bootloader.name} one-shot", engine.bootloader.clear_oneshot, kind=Kind.SWITCH)
    report.plan.add(f"set {engine.pool} bootfs={running.dataset} (the running BE)", lambda: engine.set_bootfs(running.dataset), kind=Kind.SET_BOOTFS)
    report.plan.add(f"make {running.name} the bootloader default", lambda: engine.bootloader.post_activate(running), kind=Kind.BOOTLOADER)


def _trial(engine: Engine, scan: Scan, report: Report) -> None:
    root = scan.datasets.get(engine.be_root)
    trial = root.user(PROP_TRIAL_BE) if root is not None else None
    if trial and engine.dataset_of(trial) not in scan.datasets:
        report.found.append(f"a trial boot of {trial}, which does not exist")
        report.plan.add(
            f"clear the trial of {trial} on {engine.be_root}",
            lambda: [engine.zfs.inherit(engine.be_root, p) for p in TRIAL_PROPS],
            kind=Kind.TRIAL,
        )


def _broken_bes(engine: Engine, scan: Scan, report: Report, bes: dict) -> set[str]:
    """Destroy plans for the BEs a killed create (pending) or destroy
    (destroying) left. Return the datasets those plans remove."""
    broken = [be.name for be in bes.values() if be.state in NOT_WHOLE and not be.running]
    if not broken:
        return set()
    for name in broken:
        why = "its create (or the apt run in it) never finished: discarded" if bes[name].state == STATE_PENDING else "its destroy was interrupted: finished"
        report.found.append(f"{name} is {bes[name].state}: {why}")
    try:
        # One scan: the same listing decides the promotions and what goes.
        sub = engine.plan_destroy(broken, scan=scan)
    except BootenvError as exc:
        report.explained.append(f"cannot discard {', '.join(broken)} now: {exc}")
        return set()
    # The bootfs steps above run first: a broken BE that was the default is
    # not by the time its destroy runs (plan_destroy read the pool's bootfs).
    # Its record of the operation is repair's own (set first, cleared last).
    report.plan.steps += [s for s in sub.steps if PROP_OPERATION not in s.text]
    report.plan.notes += sub.notes
    return {ds for name in broken for ds in scan.members(engine.dataset_of(name))}


def _lone_boot_halves(engine: Engine, scan: Scan, report: Report, bes: dict) -> None:
    """Boot halves (bpool/BOOT/X) with no BE X. A paired rename killed
    between its two renames (recorded as 'rename OLD NEW') is finished;
    any other is named and left alone (bootenv may not have made it)."""
    if not engine.boot_root:
        return
    root = scan.datasets.get(engine.be_root)
    operation = (root.user(PROP_OPERATION) if root is not None else None) or ""
    verb, _, names = operation.partition(" ")
    old, _, new = names.partition(" ")
    for ds in scan.datasets.values():
        if ds.is_snapshot or parent_of(ds.name) != engine.boot_root or ds.name.rsplit("/", 1)[1] in bes:
            continue
        name = ds.name.rsplit("/", 1)[1]
        if verb == "rename" and name == old and new in bes and not bes[new].boot:
            report.found.append(f"{ds.name}: the boot half of {new}, whose rename from {old} was interrupted")
            report.plan.add(f"rename {ds.name} to {engine.counterpart(ds.name, new)}", lambda d=ds.name: engine.zfs.rename(d, engine.counterpart(d, new)), kind=Kind.RENAME)
        else:
            report.explained.append(f"{ds.name} has no boot environment {name} under {engine.be_root}: left alone (destroy it with zfs destroy if it is not needed)")


def _boot_mounts(engine: Engine, scan: Scan, report: Report) -> None:
    """What a boot mounts by itself (canmount=on) is the next boot's: its
    boot half where /boot is paired, and no other BE's dataset (an
    activate killed between its canmount changes leaves none or two).
    Only where /boot is paired: elsewhere the initramfs mounts the booted
    BE whatever its datasets' canmount, and repair leaves them as they are."""
    if not engine.boot_root or not scan.bootfs or scan.bootfs not in scan.datasets:
        return
    before = len(report.plan.steps)
    engine.plan_boot_mount(report.plan, scan, scan.bootfs)
    if len(report.plan.steps) > before:
        report.found.append(f"what a boot mounts by itself (canmount=on) is not {engine.name_of(scan.bootfs)}'s alone")


def _stray_snapshots(engine: Engine, scan: Scan, report: Report, doomed: set[str]) -> None:
    """bootenv's snapshots nothing depends on (no clone, no hold), outside
    the trees a destroy above removes anyway."""
    for fs, snaps in scan.snapshots.items():
        if fs in doomed:
            continue
        for snap in snaps:
            if snap.user(PROP_SNAPSHOT) != "yes" or snap.props.get("clones") or scan.clones.get(snap.name):
                continue
            if snap.user(PROP_SENT):
                continue  # sent whole: a base of increments (transfer.py), not residue
            refs = snap.props.get("userrefs")
            if refs and refs != "0":
                report.explained.append(f"keeping {snap.name}: it has user holds")
                continue
            report.found.append(f"{snap.name}: a snapshot bootenv took that no boot environment needs")
            report.plan.add(f"destroy snapshot {snap.name}", lambda s=snap.name: engine.zfs.destroy(s), destroys=True, kind=Kind.DESTROY)


def _explain(engine: Engine, scan: Scan, report: Report, bes: dict, lock_text: Optional[str]) -> None:
    for be in bes.values():
        if be.state == STATE_UNFINISHED_APT:
            report.explained.append(
                f"keeping {be.name}: a whole checkpoint whose apt run was never seen to finish "
                f"(to go back to it: bootenv activate {be.name})"
            )
        if be.mounted and not be.running:
            report.explained.append(f"{be.name} is mounted (bootenv mount): 'bootenv unmount {be.name}' when done")
    _disagreeing_default(engine, scan, report)
    if lock_text:
        pid = lock_text.split(":", 1)[0].removeprefix("pid ").strip()
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            report.explained.append(f"the lock file named pid {pid}, which is gone ({lock_text.strip()}): stale, released")


def _disagreeing_default(engine: Engine, scan: Scan, report: Report) -> None:
    """bootfs and the bootloader's default naming two whole BEs: an activate
    killed between its bootfs write and its bootloader one (GRUB with no
    bootenv_default boots its menu's first entry), or a menu remade on a BE
    picked by hand. Both boot; which one was meant is the admin's call."""
    root = engine.be_root + "/"
    default = engine.bootloader.default_boot(engine.be_root, scan.bootfs)
    if not (scan.bootfs and default and default != scan.bootfs and scan.bootfs.startswith(root) and default.startswith(root)
            and scan.bootfs in scan.datasets and default in scan.datasets):
        return
    name, boots = engine.name_of(scan.bootfs), engine.name_of(default)
    report.explained.append(
        f"{engine.pool} bootfs names {name}, but {engine.bootloader.name} boots {boots} next: "
        f"'bootenv activate {name}' (or 'bootenv activate {boots}') makes them agree"
    )
