"""The wrapper every public FakeZfs operation goes through."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

from ..base import ZfsError

if TYPE_CHECKING:
    from .state import FakeState as FakeZfs


def op(mutating: bool) -> Callable:
    """Wrap a public method: injected faults first; in strict mode check
    that a raising call changed nothing and that invariants hold after
    every call; autosave after a successful mutating call."""

    def deco(fn: Callable) -> Callable:
        op = fn.__name__

        @functools.wraps(fn)
        def wrapper(self: "FakeZfs", *args, **kwargs):
            queue = self._faults.get(op)
            if queue:
                err = queue.pop(0)
                if not queue:
                    del self._faults[op]
                if self.autosave is not None and not self._depth:
                    self.save(self.autosave)  # the fault is used up, in the file too
                raise err
            if not self.strict or self._depth:
                result = fn(self, *args, **kwargs)
            else:
                before = self.to_dict()
                self._depth += 1
                try:
                    result = fn(self, *args, **kwargs)
                except ZfsError:
                    if self.to_dict() != before:
                        raise AssertionError(f"FakeZfs.{op} raised but changed the state")
                    raise
                finally:
                    self._depth -= 1
                self.check_invariants()
            if mutating and self.autosave is not None and not self._depth:
                self.save(self.autosave)
            return result

        wrapper._fake_op = op  # type: ignore[attr-defined]
        return wrapper

    return deco
