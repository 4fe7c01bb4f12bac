"""A package manager that runs no apt: for unit tests and the benchmark.

`FakePackages` returns a plan it was given, records every call, and its
`run` takes a set time, calls an optional hook (a test writes data into
the fake pool, or raises KeyboardInterrupt) and returns a set exit status.
`fake_plan` builds plans in a line.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

from .model import AptPlan, AptRequest, Change, reboot_reasons

MB = 1000 * 1000


def fake_plan(
    request: AptRequest,
    *,
    upgrade: Sequence[str] = (),
    install: Sequence[str] = (),
    remove: Sequence[str] = (),
    download: int = 0,
    write: Optional[int] = None,
    kept_back: Sequence[str] = (),
    root: str = "/nonexistent",
) -> AptPlan:
    """A plan changing the named packages (version 1 -> 2), with reboot
    reasons computed as the real planner does (packages only, unless
    `root` has a reboot-required file)."""
    changes = [Change(n, "upgrade", "1", "2") for n in upgrade]
    changes += [Change(n, "install", None, "2") for n in install]
    action = "purge" if request.action == "purge" else "remove"
    changes += [Change(n, action, "1", None) for n in remove]
    changes.sort(key=lambda c: c.name)
    unpacked = write if write is not None else MB * (len(upgrade) + len(install))
    return AptPlan(
        request=request,
        changes=tuple(changes),
        download_bytes=download,
        space_bytes=unpacked - MB * len(upgrade) - MB * len(remove),
        write_bytes=unpacked,
        kept_back=tuple(kept_back),
        reboot_reasons=reboot_reasons(changes, root),
    )


class FakePackages:
    """PackageManager double. `plan_for(request)` gives the plan (default:
    upgrade `a` and `b`); `plan_error` / `update_error` are raised by
    plan / update; `run` sleeps `seconds`, calls `on_run(request, root)`,
    then returns `status` (or raises it if it is an exception)."""

    def __init__(
        self,
        plan_for: Optional[Callable[[AptRequest], AptPlan]] = None,
        *,
        status: int | BaseException = 0,
        plan_error: Optional[BaseException] = None,
        update_error: Optional[BaseException] = None,
        seconds: float = 0.0,
        on_run: Optional[Callable[[AptRequest, Optional[str]], None]] = None,
    ):
        self.plan_for = plan_for or (lambda req: fake_plan(req, upgrade=("a", "b")))
        self.status = status
        self.plan_error = plan_error
        self.update_error = update_error
        self.seconds = seconds
        self.on_run = on_run
        self.calls: list[tuple] = []

    def update(self) -> None:
        self.calls.append(("update",))
        if self.update_error is not None:
            raise self.update_error

    def plan(self, request: AptRequest) -> AptPlan:
        self.calls.append(("plan", request.text))
        if self.plan_error is not None:
            raise self.plan_error
        return dataclasses.replace(self.plan_for(request), request=request)

    def run(self, request: AptRequest, root: Optional[str] = None) -> int:
        self.calls.append(("run", request.text, root))
        if self.seconds:
            time.sleep(self.seconds)
        if self.on_run is not None:
            self.on_run(request, root)
        if isinstance(self.status, BaseException):
            raise self.status
        return self.status
