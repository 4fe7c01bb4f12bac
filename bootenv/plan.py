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

from .errors import BootenvError, OperationFailed
from .zfs.base import ZfsError

Action = Callable[[], None]
Progress = Callable[[int, int, str], None]


@dataclass
class Step:
    text: str  # one line, what it does: "snapshot rpool/ROOT/debian@x"
    action: Action
    undo: Optional[Action] = None  # called if a later step fails
    destroys: bool = False  # this step removes data


@dataclass
class Plan:
    summary: str  # one line: "Create boot environment x from debian"
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown before asking
    result: object = None  # what the operation returns when done

    def add(self, text: str, action: Action, undo: Optional[Action] = None, destroys: bool = False) -> None:
        self.steps.append(Step(text, action, undo, destroys))

    @property
    def destroys(self) -> list[str]:
        return [s.text for s in self.steps if s.destroys]

    def describe(self) -> list[str]:
        return [self.summary, *("  " + n for n in self.notes), *("  - " + s.text for s in self.steps)]

    def execute(self, progress: Optional[Progress] = None) -> object:
        """Run every step in order. On failure undo the completed steps that
        can be undone (newest first) and raise OperationFailed naming the
        step and the ZFS error."""
        done: list[Step] = []
        total = len(self.steps)
        for number, step in enumerate(self.steps, 1):
            if progress:
                progress(number, total, step.text)
            try:
                step.action()
            except BootenvError:
                self._undo(done)
                raise
            except ZfsError as exc:
                undone = self._undo(done)
                tail = " (undone: the earlier steps were reverted)" if undone else ""
                raise OperationFailed(f"{step.text}: {exc}{tail}") from exc
            done.append(step)
        return self.result

    @staticmethod
    def _undo(done: list[Step]) -> bool:
        undone = False
        for step in reversed(done):
            if step.undo is not None:
                try:
                    step.undo()
                    undone = True
                except ZfsError:
                    # Keep undoing the rest: a leftover is reported by the
                    # original error, and `bootenv list` shows it as pending.
                    pass
        return undone
