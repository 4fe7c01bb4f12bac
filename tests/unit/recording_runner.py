"""A Runner for unit tests that records argv lists instead of running
anything: mount, umount, chroot. `fail(argv)` decides which calls fail
(CommandFailed), `live_status` is what live (streamed) commands return."""

from __future__ import annotations

import subprocess
from typing import Callable, Optional

from bootenv.run import CommandFailed, Runner


class RecordingRunner(Runner):
    def __init__(self, fail: Optional[Callable[[list[str]], bool]] = None, live_status: int = 0):
        super().__init__(echo=lambda line: None)
        self.calls: list[list[str]] = []
        self.fail = fail or (lambda argv: False)
        self.live_status = live_status
        self.live_env: list[dict] = []
        self.done: list[list[str]] = []  # the calls that succeeded

    def run(self, argv, *, mutating=False, check=True, input=None, env=None, timeout=None):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.fail(argv):
            raise CommandFailed(argv, 32, "", f"{argv[0]}: target is busy")
        self.done.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def live(self, argv, *, env=None, tee=None, mutating=True, interrupt_wait=30.0):
        self.calls.append(list(argv))
        self.live_env.append(dict(env or {}))
        return self.live_status, ""

    def bound(self) -> list[str]:
        """Targets bind-mounted and not unmounted again."""
        active: list[str] = []
        for argv in self.done:
            if argv[:2] == ["mount", "--rbind"]:
                active.append(argv[3])
            elif argv[0] == "umount" and argv[-1] in active:
                active.remove(argv[-1])
        return active
