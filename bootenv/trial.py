"""Trial boots and automatic fallback (OSTree + greenboot style), with all
state in ZFS user properties.

    bootenv activate NEW --once     arm a trial: NEW boots next, once
    (reboot)
    bootenv boot-started            early in every boot (bootenv-boot.service)
    bootenv confirm                 after boot-complete.target (bootenv-confirm.service)

The design, and why (GRUB cannot write its environment on ZFS, so a plain
`grub-reboot` never expires there):

1. Arming records the trial on the BE root dataset (rpool/ROOT), which no
   rollback touches: `org.bootenv:trial-be` = NEW, `trial-state` = armed,
   `trial-fallback` = the default it replaces (the BE booted after it),
   `trial-boots` = 0, `trial-since`. The permanent default does NOT move.
   The next boot is pointed at NEW with the driver's one-shot: GRUB's
   `bootenv_once` (grub.py), systemd-boot's LoaderEntryOneShot. Drivers
   without one (bootfs, ZFSBootMenu) get bootfs=NEW for now.
2. Where the bootloader can consume its one-shot itself (systemd-boot; GRUB
   with its environment on ext4 or the ESP) the trial is one-shot even if
   NEW dies before userspace: the power-cycle after it boots the default.
3. Either way, `boot-started` runs as early as systemd allows
   (bootenv-boot.service, before sysinit.target) and, when it finds itself
   on NEW with the trial armed, FIRST restores the default (clears the
   one-shot / bootfs back to the fallback), then marks the trial booted
   and counts the boot (`trial-boots`, `trial-boot-id`). From that moment
   any reboot that is not preceded by a confirm lands on the fallback: a
   failing service, a hang, a failed health check. On ZFS-only GRUB this is
   what makes the one-shot one-shot; what it cannot cover is a BE that dies
   before systemd starts (kernel or initramfs): put /boot/grub on a
   partition GRUB can write (bootenv(8), GRUB) for that.
4. `boot-started` on any other BE while a trial is armed or booted means the
   trial did not come up, was not confirmed, or was not taken: the trial is
   abandoned, NEW is marked `org.bootenv:verdict=failed` with the reason,
   the default is (still) the fallback. A trial BE booted a second time
   without confirm (a new boot id) is abandoned too (one boot, one chance).
5. `confirm` runs /etc/bootenv/health.d/* (run-parts style; a non-zero exit
   names the script); if all pass on the trial BE it becomes the default
   for good (a full activate: promote, bootfs, bootloader default) and the
   last good BE (`org.bootenv:last-good`, `verdict=good`). If one fails the
   trial is abandoned at once. On a boot that is not a trial, confirm just
   records the running BE as the last good one.
6. `fallback` abandons a trial by hand, or without one activates the last
   good BE.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass, field
from typing import Optional

from .engine import Engine, Scan
from .errors import OperationFailed, Refused, UsageError
from .model import (
    PROP_NS,
    PROP_TRIAL_BE,
    PROP_TRIAL_FALLBACK,
    PROP_LAST_GOOD,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_PENDING,
    STATE_UNFINISHED_APT,
    BootEnv,
    validate_be_name,
)
from .plan import Kind, Plan, Step
from .run import CommandFailed, Runner, default_runner

# On the BE root dataset (shared by every BE, untouched by rollbacks).
PROP_TRIAL_STATE = PROP_NS + "trial-state"  # armed | booted
PROP_TRIAL_BOOTS = PROP_NS + "trial-boots"
PROP_TRIAL_BOOT_ID = PROP_NS + "trial-boot-id"
PROP_TRIAL_SINCE = PROP_NS + "trial-since"
TRIAL_PROPS = (PROP_TRIAL_BE, PROP_TRIAL_STATE, PROP_TRIAL_FALLBACK, PROP_TRIAL_BOOTS, PROP_TRIAL_BOOT_ID, PROP_TRIAL_SINCE)
ROOT_PROPS = (*TRIAL_PROPS, PROP_LAST_GOOD)
# On each BE's top dataset: the outcome of its last trial or confirm.
PROP_VERDICT = PROP_NS + "verdict"  # good | failed
PROP_VERDICT_REASON = PROP_NS + "verdict-reason"
PROP_VERDICT_TIME = PROP_NS + "verdict-time"
# What `status` lists, besides bootenv's usual properties.
STATUS_PROPS = (*ROOT_PROPS, PROP_VERDICT, PROP_VERDICT_REASON)

# Boots a trial BE gets without a confirm before it is abandoned.
MAX_TRIAL_BOOTS = 1
HEALTH_DIR = "/etc/bootenv/health.d"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


class HealthCheckFailed(OperationFailed):
    """A script in /etc/bootenv/health.d exited non-zero: this boot is not good."""


@dataclass
class TrialState:
    """What the pool says about trial boots, as one read saw it."""

    be: Optional[str] = None
    phase: Optional[str] = None  # armed | booted
    fallback: Optional[str] = None
    boots: int = 0
    boot_id: Optional[str] = None
    since: Optional[int] = None
    last_good: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.be is not None and self.phase in ("armed", "booted")


@dataclass
class Status:
    """`bootenv status`: what runs, what boots next, whether this is a trial."""

    running: Optional[str]
    next_boot: Optional[str]
    default: Optional[str]  # what boots once the one-shot is used up
    trial: Optional[dict]
    this_boot_is_trial: bool
    last_good: Optional[str]
    bootloader: str
    oneshot_expires: bool
    verdicts: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def read_boot_id(path: str = BOOT_ID_FILE) -> str:
    """This boot's identity (the kernel's random boot_id)."""
    override = os.environ.get("BOOTENV_BOOT_ID")
    if override:
        return override
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def health_scripts(directory: str) -> list[str]:
    """The executable regular files in `directory`, in name order, skipping
    dotfiles and editor/dpkg leftovers (as run-parts does)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.startswith(".") or name.endswith(("~", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".disabled")):
            continue
        path = os.path.join(directory, name)
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK):
            out.append(path)
    return out


def run_health_checks(directory: str = HEALTH_DIR, runner: Optional[Runner] = None, timeout: float = 300) -> Optional[str]:
    """Run every health script; return None when all pass, else a one-line
    description of the first failure (script name, exit code, last line)."""
    runner = runner or default_runner
    for path in health_scripts(directory):
        name = os.path.basename(path)
        try:
            proc = runner.run([path], check=False, timeout=timeout)
        except CommandFailed as exc:
            return f"health check {name} could not run: {exc}"
        except Exception as exc:  # subprocess.TimeoutExpired
            return f"health check {name} failed: {exc}"
        if proc.returncode != 0:
            lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            detail = f": {lines[-1]}" if lines else ""
            return f"health check {name} failed (exit {proc.returncode}){detail}"
    return None


class Trial:
    """The trial-boot state machine on top of an Engine. Every operation
    returns a Plan (shown, then executed by the CLI under the lock)."""

    def __init__(self, engine: Engine, *, boot_id: Optional[str] = None):
        self.engine = engine
        self.zfs = engine.zfs
        self.boot = engine.bootloader
        self.boot_id = boot_id or read_boot_id()

    # ------------------------------------------------------------ reading

    def state(self) -> TrialState:
        return self._state_from(self.zfs.get_props(self.engine.be_root, list(ROOT_PROPS)))

    @staticmethod
    def _state_from(props) -> TrialState:
        """The trial state the BE root's properties tell."""
        boots = props.get(PROP_TRIAL_BOOTS, "0")
        since = props.get(PROP_TRIAL_SINCE)
        return TrialState(
            be=props.get(PROP_TRIAL_BE),
            phase=props.get(PROP_TRIAL_STATE),
            fallback=props.get(PROP_TRIAL_FALLBACK),
            boots=int(boots) if boots.isdigit() else 0,
            boot_id=props.get(PROP_TRIAL_BOOT_ID),
            since=int(since) if since and since.isdigit() else None,
            last_good=props.get(PROP_LAST_GOOD),
        )

    def _name(self, dataset: Optional[str]) -> Optional[str]:
        return self.engine.name_of(dataset) if dataset else None

    def _dataset(self, name: str) -> str:
        return self.engine.dataset_of(name)

    def running(self) -> Optional[str]:
        return self._name(self.engine.running_dataset)

    def scan(self) -> Scan:
        """One listing with everything `status` shows: the trial state (on
        the BE root's row) and every BE's verdict; and the pool's bootfs."""
        return self.engine.scan(extra_props=STATUS_PROPS)

    def status(self, scan: Optional[Scan] = None) -> Status:
        """Running BE, next-boot BE, the default after a one-shot, the trial,
        the last good BE, and each BE's last verdict: all from one scan
        (`scan()`, or the one given), never a read per BE."""
        scan = scan or self.scan()
        be_root = self.engine.be_root
        root_row = scan.datasets.get(be_root)
        st = self._state_from(root_row.props if root_row is not None else {})
        bootfs = scan.bootfs
        running = self.running()
        verdicts = {}
        for be in self.engine.list(scan):
            props = scan.datasets[be.dataset].props
            if PROP_VERDICT in props:
                verdicts[be.name] = {"verdict": props[PROP_VERDICT], "reason": props.get(PROP_VERDICT_REASON)}
        default = self._name(self.boot.default_boot(be_root, bootfs))
        if st.active and st.phase == "armed" and not self.boot.oneshot and st.fallback:
            default = st.fallback  # bootfs points at the trial until it starts
        trial = None
        if st.active:
            trial = {"be": st.be, "state": st.phase, "fallback": st.fallback, "boots": st.boots, "since": st.since}
        return Status(
            running=running,
            next_boot=self._name(self.boot.next_boot(be_root, bootfs)),
            default=default,
            trial=trial,
            this_boot_is_trial=bool(st.active and st.phase == "booted" and st.be == running and st.boot_id == self.boot_id),
            last_good=st.last_good,
            bootloader=self.boot.name,
            oneshot_expires=self.boot.oneshot_expires,
            verdicts=verdicts,
        )

    # ------------------------------------------------------------ arming

    def plan_activate_once(self, name: str) -> Plan:
        """Plan a trial boot of `name`: the next boot only, then the current
        default again unless `bootenv confirm` runs on it. Refuse the
        running BE and the BE that is already the default."""
        validate_be_name(name)
        st = self.state()
        running = self.running()
        if name == running:
            raise Refused(f"{name} is running now; --once is for trying another boot environment")
        if st.active and st.phase == "booted" and st.be == running:
            raise Refused(f"this boot is a trial of {st.be}: run 'bootenv confirm' or 'bootenv fallback' first")
        bootfs = self.zfs.pool_get(self.engine.pool, "bootfs")
        if st.active and st.phase == "armed" and st.fallback:
            default = st.fallback  # re-arming: the default is still the old fallback
        else:
            default = self._name(self.boot.default_boot(self.engine.be_root, bootfs))
        if default == name:
            raise Refused(f"{name} is already the default boot environment; --once would change nothing")
        if default is None:
            raise UsageError("no default boot environment to come back to (set one with 'bootenv activate')")
        plan = self.engine.plan_activate(name, once=True)
        props = {
            PROP_TRIAL_BE: name,
            PROP_TRIAL_STATE: "armed",
            PROP_TRIAL_FALLBACK: default,
            PROP_TRIAL_BOOTS: "0",
            PROP_TRIAL_SINCE: str(int(self.engine.clock())),
        }
        root = self.engine.be_root
        undo_props = {k: v for k, v in self.zfs.get_props(root, list(TRIAL_PROPS)).items()}

        def undo() -> None:
            self._clear_trial()
            if undo_props:
                self.zfs.set_props(root, undo_props)

        # Recorded before the switch: a crash in between leaves a trial
        # that boot-started recognises, never an unrecorded one-shot.
        where = plan.index(Kind.SWITCH, Kind.SET_BOOTFS)
        plan.steps.insert(where, Step(f"record the trial of {name} (fallback {default}) on {root}",
                                      lambda: self._set_root(props, clear=(PROP_TRIAL_BOOT_ID,)), undo, kind=Kind.TRIAL))
        plan.notes.append(
            f"{name} boots once; unless 'bootenv confirm' succeeds on it, later boots use {default}"
            + ("" if self.boot.oneshot_expires else
               f" (the {self.boot.name} one-shot is cleared early in the trial boot by bootenv-boot.service)")
        )
        return plan

    # ------------------------------------------------------------ booting

    def plan_boot_started(self) -> Plan:
        """Plan what bootenv-boot.service does early in every boot: on the
        armed trial BE, restore the default FIRST, then count the boot; on
        any other BE, abandon a trial that did not come up or was not
        confirmed. Nothing to do without a trial."""
        st = self.state()
        running = self.running()
        plan = Plan("Boot started" + (f" on {running}" if running else ""), point="trial-boot-started")
        if not st.active:
            plan.result = "no trial boot"
            return plan
        if st.be == running and st.phase == "armed":
            self._add_restore_default(plan, st)
            plan.add(
                f"mark the trial of {st.be} booted (boot {st.boots + 1})",
                lambda: self._set_root({PROP_TRIAL_STATE: "booted", PROP_TRIAL_BOOTS: str(st.boots + 1),
                                        PROP_TRIAL_BOOT_ID: self.boot_id}),
                kind=Kind.TRIAL,
            )
            plan.result = f"trial boot of {st.be}: run 'bootenv confirm' to keep it, else the next boot uses {st.fallback}"
            return plan
        if st.be == running and st.phase == "booted":
            if st.boot_id == self.boot_id:
                plan.result = f"trial boot of {st.be} (already counted)"
                return plan
            boots = st.boots + 1
            if boots <= MAX_TRIAL_BOOTS:  # pragma: no cover - MAX_TRIAL_BOOTS is 1
                plan.add(f"count boot {boots} of {st.be}", lambda: self._set_root({PROP_TRIAL_BOOTS: str(boots), PROP_TRIAL_BOOT_ID: self.boot_id}), kind=Kind.TRIAL)
                plan.result = f"trial boot {boots} of {st.be}"
                return plan
            reason = f"booted {boots} times without 'bootenv confirm'"
        elif st.phase == "armed":
            reason = f"did not come up (this boot is {running or 'not a boot environment'})"
        else:
            reason = "its trial boot ended without 'bootenv confirm'"
        self._add_abandon(plan, st, reason)
        plan.result = f"trial of {st.be} abandoned: {reason}; the default is {st.fallback}"
        return plan

    # ------------------------------------------------------------ confirm

    def plan_confirm(self, failure: Optional[str] = None) -> Plan:
        """Plan `bootenv confirm` after the health checks ran (`failure`
        describes the first failing one, or None). Settles the boot first
        (as boot-started would, if it did not run). On the trial BE: all
        good -> it becomes the default for good and the last good BE;
        a failure -> the trial is abandoned. Without a trial: all good ->
        the running BE is the last good one."""
        started = self.plan_boot_started()
        st = self.state()
        running = self.running()
        plan = Plan(f"Confirm the boot of {running}" if running else "Confirm this boot", point="trial-confirm")
        plan.steps.extend(started.steps)
        # Still on the trial after boot-started settled it (otherwise
        # boot-started has just abandoned it, or there is none).
        on_trial = st.active and st.be == running and (
            st.phase == "armed" or (st.phase == "booted" and st.boot_id == self.boot_id)
        )
        if failure:
            if on_trial:
                # armed: boot-started's steps above already restore the default.
                self._add_abandon(plan, st, failure, restore=st.phase == "booted")
                plan.result = f"{failure}; trial of {st.be} abandoned: the next boot uses {st.fallback}"
            else:
                plan.result = f"{failure}; this boot is not marked good"
            return plan
        if running is None:
            raise UsageError("the running root is not a boot environment under " + self.engine.be_root)
        if on_trial:
            activate = self.engine.plan_activate(running)
            plan.notes.extend(activate.notes)
            plan.steps.extend(activate.without(Kind.CHECK))
            plan.add(f"end the trial of {running}", self._clear_trial, kind=Kind.TRIAL)
            plan.result = f"{running} confirmed: it is the default boot environment now"
        else:
            plan.result = f"{running} is good"
        plan.add(f"record {running} as the last good boot environment", lambda: self._mark_good(running), kind=Kind.TRIAL)
        return plan

    # ------------------------------------------------------------ fallback

    def plan_fallback(self) -> Plan:
        """Plan giving up: abandon a trial (the default is its fallback
        again), or without one activate the last good BE."""
        st = self.state()
        if st.active:
            plan = Plan(f"Abandon the trial of {st.be}", point="trial-fallback")
            self._add_abandon(plan, st, "abandoned by 'bootenv fallback'")
            plan.result = st.fallback
            return plan
        if not st.last_good:
            raise Refused("no trial to abandon and no last good boot environment recorded (run 'bootenv confirm' on a good boot)")
        if not self.zfs.exists(self._dataset(st.last_good)):
            raise Refused(f"the last good boot environment {st.last_good} no longer exists")
        plan = self.engine.plan_activate(st.last_good)
        plan.summary = f"Fall back to the last good boot environment {st.last_good}"
        plan.point = "trial-fallback"
        plan.result = st.last_good
        return plan

    # ------------------------------------------------------------ helpers

    def _add_restore_default(self, plan: Plan, st: TrialState) -> None:
        """Steps that make the next boot the fallback again."""
        if self.boot.oneshot:
            plan.add(f"clear the {self.boot.name} one-shot", self.boot.clear_oneshot, kind=Kind.SWITCH)
        bootfs = self.zfs.pool_get(self.engine.pool, "bootfs")
        if st.fallback and bootfs == self._dataset(st.be or "") and self.zfs.exists(self._dataset(st.fallback)):
            target = self._dataset(st.fallback)
            plan.add(f"set {self.engine.pool} bootfs={target} (back to the default)",
                     lambda: self.engine.set_bootfs(target), kind=Kind.SET_BOOTFS)

    def _add_abandon(self, plan: Plan, st: TrialState, reason: str, restore: bool = True) -> None:
        if restore:
            self._add_restore_default(plan, st)
        name = st.be
        if name and self.zfs.exists(self._dataset(name)):
            plan.add(f"mark {name} failed: {reason}", lambda: self._set_verdict(name, "failed", reason), kind=Kind.TRIAL)
        plan.add(f"abandon the trial of {name}", self._clear_trial, kind=Kind.TRIAL)

    def _set_root(self, props: dict[str, str], clear: tuple[str, ...] = ()) -> None:
        for prop in clear:
            self.zfs.inherit(self.engine.be_root, prop)
        self.zfs.set_props(self.engine.be_root, props)

    def _clear_trial(self) -> None:
        for prop in TRIAL_PROPS:
            self.zfs.inherit(self.engine.be_root, prop)

    def _set_verdict(self, name: str, verdict: str, reason: str) -> None:
        self.zfs.set_props(self._dataset(name), {
            PROP_VERDICT: verdict,
            PROP_VERDICT_REASON: reason.replace("\n", " ")[:200],
            PROP_VERDICT_TIME: str(int(self.engine.clock())),
        })

    def _mark_good(self, name: str) -> None:
        self._set_verdict(name, "good", "confirmed")
        self.zfs.set_props(self.engine.be_root, {PROP_LAST_GOOD: name})


# How `status` shows a BE's org.bootenv:state (model.STATES) when not complete.
STATE_NOTES = {
    STATE_PENDING: "pending: its create never finished; not bootable, destroy it",
    STATE_UNFINISHED_APT: "unfinished-apt: the apt run after it never finished",
    STATE_FAILED: "state failed: the apt run after it failed",
}


def describe_status(status: Status, bes: list[BootEnv]) -> str:
    """`bootenv status` for people, in the spirit of `ostree admin status`."""
    lines = []
    for be in bes:
        marks = []
        if be.name == status.running:
            marks.append("running")
        if be.name == status.next_boot:
            marks.append("next boot" + (" (once)" if status.trial and status.trial["be"] == be.name and status.trial["state"] == "armed" else ""))
        if be.name == status.default and status.default != status.next_boot:
            marks.append("default")
        if be.name == status.last_good:
            marks.append("last good")
        verdict = status.verdicts.get(be.name)
        if verdict and verdict["verdict"] == "failed":
            marks.append(f"failed: {verdict['reason']}")
        if be.state and be.state != STATE_COMPLETE:
            marks.append(STATE_NOTES.get(be.state, f"state {be.state}"))
        lead = "*" if be.name == status.running else " "
        lines.append(f"{lead} {be.name}" + (f"  ({', '.join(marks)})" if marks else ""))
    lines.append("")
    if status.trial:
        t = status.trial
        if t["state"] == "armed":
            lines.append(f"Trial: {t['be']} boots next, once; then {t['fallback']} unless it is confirmed")
        elif status.this_boot_is_trial:
            lines.append(f"Trial: this boot is a trial of {t['be']}; 'bootenv confirm' keeps it, a reboot goes back to {t['fallback']}")
        else:
            lines.append(f"Trial: {t['be']} ({t['state']}, boots {t['boots']}; fallback {t['fallback']})")
    else:
        lines.append("Trial: none")
    lines.append(f"Last good: {status.last_good or '-'}")
    lines.append(f"Bootloader: {status.bootloader}" + (" (one-shot expires in the bootloader)" if status.oneshot_expires else ""))
    return "\n".join(lines)
