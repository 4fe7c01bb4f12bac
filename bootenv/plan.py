"""Plans: what a command will change, shown before it changes anything.

Every mutating engine operation first builds a Plan (a list of Steps, each a
line of text and the action that does it). The CLI prints the plan, asks
when something would be destroyed, prints it and stops under --dry-run, or
executes it with progress. A failing step undoes the steps before it that
know how (a half-made checkpoint is removed again), so an error leaves the
pool as it was wherever ZFS allows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from . import crash
from .errors import BootenvError, OperationFailed
from .zfs.base import ZfsError

Action = Callable[[], None]
Progress = Callable[[int, int, str], None]


class Kind:
    """What a step does, for code that looks for steps (trial.py): never
    match a step's text, which is for people and may be reworded."""

    CHECK = "check"  # the bootloader driver checks the BE can boot
    PREPARE = "prepare"  # the driver's look inside the BE (mid-activate)
    SNAPSHOT = "snapshot"
    CLONE = "clone"
    MARK = "mark"  # set the BE's org.bootenv:state
    PROMOTE = "promote"
    SET_BOOTFS = "set-bootfs"  # the pool's bootfs: what boots next
    BOOT_MOUNT = "boot-mount"  # which BE's boot half a boot mounts at /boot (canmount)
    SWITCH = "switch"  # the driver's one-shot: the next boot only
    BOOTLOADER = "bootloader"  # the driver follows (default, boot menu)
    UNMOUNT = "unmount"
    DESTROY = "destroy"
    RENAME = "rename"
    SET_PROPS = "set-props"
    GENERATION = "generation"  # take a generation number from the BE root's counter
    ROLLBACK = "rollback"  # record where a rollback came from (so it can be rolled back)
    TRIAL = "trial"  # trial.py's bookkeeping on the BE root
    OTHER = "other"


@dataclass
class Step:
    text: str  # one line, what it does: "snapshot rpool/ROOT/debian@x"
    action: Action
    undo: Optional[Action] = None  # called if a later step fails
    destroys: bool = False  # this step removes data
    kind: str = Kind.OTHER  # what it does, for code (a Kind)


@dataclass
class Plan:
    summary: str  # one line: "Create boot environment x from debian"
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown before asking
    result: object = None  # what the operation returns when done
    # What destroying it frees, as ZFS computes it: ({BE: bytes or None}, total or None)
    reclaim: Optional[tuple[dict[str, Optional[int]], Optional[int]]] = None
    # The crash seam's name for this plan (crash.py: POINT#N is its N-th step)
    point: Optional[str] = None

    def add(
        self, text: str, action: Action, undo: Optional[Action] = None, destroys: bool = False, *, kind: str = Kind.OTHER
    ) -> None:
        self.steps.append(Step(text, action, undo, destroys, kind))

    def index(self, *kinds: str) -> int:
        """The position of the first step of one of `kinds`. Raise ValueError."""
        for number, step in enumerate(self.steps):
            if step.kind in kinds:
                return number
        raise ValueError(f"no step of kind {' or '.join(kinds)} in the plan")

    def without(self, *kinds: str) -> list[Step]:
        """The steps that are of none of `kinds`."""
        return [step for step in self.steps if step.kind not in kinds]

    @property
    def destroys(self) -> list[str]:
        return [s.text for s in self.steps if s.destroys]

    def describe(self) -> list[str]:
        return [self.summary, *("  " + n for n in self.notes), *("  - " + s.text for s in self.steps)]

    def execute(self, progress: Optional[Progress] = None) -> object:
        """Run every step in order. On failure undo the completed steps that
        can be undone (newest first) and raise OperationFailed naming the
        step and the ZFS (or OS) error."""
        done: list[Step] = []
        total = len(self.steps)
        for number, step in enumerate(self.steps, 1):
            if progress:
                progress(number, total, step.text)
            crash.plan_step(step.kind, "before", self.point, number)
            try:
                step.action()
            except KeyboardInterrupt:
                # Ctrl-C undoes like an error does (the CLI then exits 130):
                # otherwise a half-made checkpoint stays behind.
                self._undo(done)
                raise
            except BootenvError:
                self._undo(done)
                raise
            except (ZfsError, OSError) as exc:  # OSError: a bootloader file, a mount point
                undone = self._undo(done)
                tail = " (undone: the earlier steps were reverted)" if undone else ""
                raise OperationFailed(f"{step.text}: {exc}{tail}") from exc
            done.append(step)
            crash.plan_step(step.kind, "after", self.point, number)
        return self.result

    @staticmethod
    def _undo(done: list[Step]) -> bool:
        undone = False
        for step in reversed(done):
            if step.undo is not None:
                try:
                    step.undo()
                    undone = True
                except (ZfsError, OSError):
                    # Keep undoing the rest: a leftover is reported by the
                    # original error, and `bootenv list` shows it as pending.
                    pass
        return undone
