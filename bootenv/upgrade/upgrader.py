"""Checkpointed apt: the orchestration on top of Engine, apt and chroot.

Two ways to run an apt request, as Nexenta's apt-clone had them:

in place   checkpoint first (a clone of the running BE, the system as it
           was), then apt on the running system. If apt fails, the
           checkpoint is one `activate` away: the caller is asked
           "Upgrade failed. Roll back now?".
sandbox    clone the running BE, mount it, chroot apt into it; the running
           system never changes. If apt fails the clone is destroyed; if it
           succeeds the admin gets three ways on (reboot into it, activate
           it now, or decide later), with the exact commands.

The default picks like apt-clone: sandbox when the change needs a reboot
anyway (kernel, libc, init, ...), in place otherwise.

Everything that can refuse is checked in `prepare`, before any dataset is
created: apt's plan (unknown names, holds, broken dependencies, the apt
lock) and the space it needs against the pool's free space.

Every BE made here carries kind=apt, the bootenv command line, a compact
list of the packages changed, and state `unfinished-apt` until apt has
finished, then `complete` or `failed` (`pending` is only a half-made create).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, ContextManager, Optional

from ..apt.model import AptError, AptPlan, AptRequest, check_space
from ..apt.packages import PackageManager
from .chroot import Chroot, sigint_deferred
from ..crash import crash_point
from ..errors import BootenvError, UsageError
from ..model import PROP_PACKAGES, PROP_STATE, STATE_PENDING, STATE_UNFINISHED_APT, make_title

IN_PLACE = "in-place"
SANDBOX = "sandbox"
MODES = (IN_PLACE, SANDBOX)
ROLLBACK_QUESTION = "Upgrade failed. Roll back now?"


@dataclass
class Prepared:
    """A checked request: the plan, the mode chosen and why, the space."""

    request: AptRequest
    plan: AptPlan
    mode: str
    why: str
    needed: int
    free: int
    command: str  # the bootenv command line, recorded on the BE

    def describe(self) -> list[str]:
        from ..apt.model import human

        lines = self.plan.describe()
        if self.plan.empty:
            return lines
        lines.append(
            f"Space: the change needs {human(self.needed)}; the pool has {human(self.free)} free."
        )
        lines.append(f"Mode: {self.mode} ({self.why}).")
        return lines


@dataclass
class Outcome:
    """What happened: the BE made (checkpoint or sandbox), whether apt
    succeeded, and what the user should read next."""

    mode: str
    be: str
    ok: bool
    status: int = 0
    rolled_back: bool = False
    destroyed: bool = False
    apt_seconds: float = 0.0
    lines: list[str] = field(default_factory=list)
    error: str = ""  # one line, when not ok


ChrootFactory = Callable[..., ContextManager]


class Upgrader:
    """Run apt requests under checkpoints on one Engine.

    `packages` is the PackageManager (python-apt + apt-get, or a fake);
    `chroot(engine, name)` gives the context manager that mounts a BE for
    apt (default chroot.Chroot); `say` prints progress lines; `timer`
    measures the time apt itself takes (the benchmark reads it)."""

    def __init__(
        self,
        engine,
        packages: PackageManager,
        *,
        chroot: ChrootFactory = Chroot,
        say: Callable[[str], None] = lambda line: None,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.engine = engine
        self.packages = packages
        self.chroot = chroot
        self.say = say
        self.timer = timer

    # ------------------------------------------------------------ plan

    def prepare(
        self,
        request: AptRequest,
        *,
        mode: Optional[str] = None,
        update: bool = True,
        command: str = "",
    ) -> Prepared:
        """Refresh the lists (unless `update` is False), plan the request,
        check the space, choose the mode. Changes no dataset. Raise
        UpdateFailed, the planner's errors, NotEnoughSpace, UsageError."""
        if mode is not None and mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}")
        if update:
            self.say("Refreshing the package lists (apt-get update)...")
            self.packages.update()
        plan = self.packages.plan(request)
        free = self.free_space()
        if not plan.empty:
            check_space(plan, free, self.engine.pool)
        if mode == SANDBOX:
            why = "asked for: the running system is not touched"
        elif mode == IN_PLACE:
            why = "asked for: checkpoint, then apt on the running system"
        elif plan.reboot_needed:
            mode = SANDBOX
            why = "a reboot is needed anyway, so apt runs in a new boot environment and the running system is not touched"
        else:
            mode = IN_PLACE
            why = "no reboot needed: checkpoint first, then apt on the running system"
        return Prepared(request, plan, mode, why, plan.needed_bytes, free, command)

    def free_space(self) -> int:
        """The pool's free bytes (what new blocks can take)."""
        value = self.engine.zfs.pool_get(self.engine.pool, "free")
        try:
            return int(value or 0)
        except ValueError:
            return 0

    def _title(self, prepared: Prepared, before: bool) -> str:
        when = datetime.fromtimestamp(self.engine.clock()).strftime("%Y-%m-%d %H:%M")
        return make_title(f"{'before ' if before else ''}{prepared.request.text} ({when})")

    def _create(self, prepared: Prepared, before: bool):
        crash_point("checkpoint", "before")
        from .hook import auto_prune

        with self.engine.bootloader.batch():  # one menu update for the checkpoint and the retention (hook.py)
            be = self.engine.plan_create(
                None,
                kind="apt",
                title=self._title(prepared, before),
                command=prepared.command or prepared.request.text,
                # In place, the checkpoint is whole before apt runs (what to go
                # back to); a sandbox clone is half made until apt finished in it:
                # pending, so a crash leaves a BE nobody activates and repair discards.
                state=STATE_UNFINISHED_APT if before else STATE_PENDING,
            ).execute()
            self.engine.set_metadata(be.name, {PROP_PACKAGES: prepared.plan.packages_property()})
            crash_point("checkpoint", "after")
            line = auto_prune(self.engine, be.name)
        if line:
            self.say(line)
        return be

    def _record_manifest(self, name: str, path: str) -> None:
        """The sandbox's packages after apt, read in its chroot; trouble
        is a line, never a failed upgrade."""
        from ..apt.manifest import ManifestError
        from ..zfs.base import ZfsError

        try:
            self.engine.record_manifest(name, path)
        except (OSError, ZfsError, ManifestError, SystemError) as exc:
            self.say(f"no package manifest recorded for {name}: {exc}")

    def _mark(self, name: str, state: str) -> None:
        crash_point("mark-complete", "before")
        try:
            self.engine.set_metadata(name, {PROP_STATE: state})
        except BootenvError as exc:
            self.say(f"could not mark {name} {state}: {exc}")
        crash_point("mark-complete", "after")

    # ------------------------------------------------------------ run

    def execute(self, prepared: Prepared, *, confirm_rollback: Callable[[str], bool] = lambda q: False) -> Outcome:
        """Carry out a prepared request in its mode."""
        if prepared.mode == SANDBOX:
            return self.sandbox(prepared)
        return self.in_place(prepared, confirm_rollback=confirm_rollback)

    def in_place(self, prepared: Prepared, *, confirm_rollback: Callable[[str], bool]) -> Outcome:
        """Checkpoint the running BE, run apt on the running system. On
        failure mark the checkpoint failed and, if `confirm_rollback`
        says yes, activate it."""
        checkpoint = self._create(prepared, before=True)
        name = checkpoint.name
        self.say(f"Checkpoint {name} holds the system as it is now; running {prepared.request.text}...")
        start = self.timer()
        try:
            crash_point("apt", "before")
            status = self.packages.run(prepared.request, None)
            crash_point("apt", "after")
        except BaseException:
            with sigint_deferred():
                self._mark(name, "failed")
            self.say(f"apt was interrupted; to go back: bootenv activate {name} && reboot")
            raise
        seconds = self.timer() - start
        if status == 0:
            self._mark(name, "complete")
            return Outcome(
                IN_PLACE, name, True, status, apt_seconds=seconds,
                lines=[f"Done. Checkpoint {name} holds the system as it was; to go back: bootenv activate {name} && reboot"],
            )
        self._mark(name, "failed")
        outcome = Outcome(IN_PLACE, name, False, status, apt_seconds=seconds)
        failed = f"{prepared.request.text} failed (exit status {status}) on the running system"
        if confirm_rollback(ROLLBACK_QUESTION):
            self.engine.plan_activate(name).execute()
            outcome.rolled_back = True
            outcome.lines.append(
                f"Rolled back: {name} (the system as it was before) boots next. Reboot now to return to it; "
                "until you do, the running system still has the half-done upgrade."
            )
            outcome.error = f"{failed}; rolled back to {name}: reboot now"
        else:
            outcome.lines.append(
                f"Not rolled back. Checkpoint {name} holds the system as it was; to go back: bootenv activate {name} && reboot"
            )
            outcome.error = f"{failed}; checkpoint {name} is kept (bootenv activate {name} && reboot to go back)"
        return outcome

    def sandbox(self, prepared: Prepared) -> Outcome:
        """Clone the running BE, run apt chrooted in it, always unmount. On
        failure (or Ctrl-C) destroy the clone: the running system never
        changed. On success mark it complete and list the three options."""
        clone = self._create(prepared, before=False)
        name = clone.name
        self.say(f"Running {prepared.request.text} in the new boot environment {name}...")
        try:
            with self.chroot(self.engine, name) as root:
                start = self.timer()
                crash_point("apt", "before")
                status = self.packages.run(prepared.request, root.path)
                crash_point("apt", "after")
                seconds = self.timer() - start
                if status == 0:
                    self._record_manifest(name, root.path)
        except BaseException:
            self._discard(name)
            raise
        if status != 0:
            destroyed = self._discard(name)
            outcome = Outcome(SANDBOX, name, False, status, destroyed=destroyed, apt_seconds=seconds)
            outcome.error = (
                f"{prepared.request.text} failed (exit status {status}) in the sandbox; "
                + (f"{name} was destroyed" if destroyed else f"{name} is marked failed (bootenv destroy {name})")
                + "; the running system did not change"
            )
            return outcome
        self._mark(name, "complete")
        return Outcome(SANDBOX, name, True, status, apt_seconds=seconds, lines=three_options(name))

    def _discard(self, name: str) -> bool:
        """Destroy a failed sandbox; if that fails, leave it marked failed."""
        with sigint_deferred():  # a second Ctrl-C must not leave half a clone
            self._mark(name, "failed")
            try:
                self.engine.plan_destroy(name).execute()
            except (BootenvError, OSError) as exc:
                self.say(f"could not destroy {name}: {exc}; remove it with: bootenv destroy {name}")
                return False
        self.say(f"Destroyed {name}; the running system did not change.")
        return True


def three_options(name: str) -> list[str]:
    """apt-clone's three ways on after a sandbox upgrade, with the commands."""
    return [
        f"The upgrade is done in boot environment {name}; the running system has not changed.",
        "Now either:",
        f"  1. reboot into {name} once to check it, and keep it if it works:",
        f"       bootenv activate --once {name} && reboot      (then, on {name}: bootenv confirm)",
        f"  2. make {name} the default now and reboot into it:",
        f"       bootenv activate {name} && reboot",
        "  3. keep working and do 1 or 2 later (or throw the upgrade away):",
        f"       bootenv destroy {name}",
    ]


__all__ = ["IN_PLACE", "SANDBOX", "MODES", "ROLLBACK_QUESTION", "Prepared", "Outcome", "Upgrader", "three_options", "AptError"]
