"""Run a command inside a boot environment that is not running.

`Chroot(engine, name)` is a context manager: on entry it moves bootenv
into a mount namespace of its own (zfs/mountns.py: every mount there is
a slave of the host's, so nothing mounted there reaches anyone), mounts the BE in it (engine.mount, under /run/bootenv/NAME),
bind-mounts /dev /proc /sys /run into it recursively, and installs a
`usr/sbin/policy-rc.d` that exits 101 so maintainer scripts start no
services. Nothing of this is seen by any other mount namespace: not by the
admin's shell, not by services with private mounts (systemd-udevd, any
unit with PrivateTmp=), which on a systemd host would otherwise receive
copies of the BE mount and its binds and keep the clone busy after
bootenv unmounted it ("dataset is busy" on destroy). Should bootenv be
killed, the kernel drops the namespace and its mounts with it.
On exit it first stops whatever still runs inside (after Ctrl-C,
dpkg and its maintainer script: chroot_procs.py), then undoes every one of
those steps, newest first, on
success, on error and on Ctrl-C alike (SIGINT is ignored while it undoes,
so a second Ctrl-C cannot leave a mount behind). Undoing never stops at
the first failure: a busy bind mount is detached lazily, and what could
not be undone is reported in one error.

Every command goes through run.py's Runner (argv lists, LC_ALL=C,
dry-run refusal); its `live` mode runs the commands whose output the user
watches (apt's progress), which must not be captured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Mapping, Optional, Sequence

from .chroot_procs import stop_processes_inside
from ..crash import crash_point
from ..errors import BootenvError, OperationFailed
from ..zfs.base import ZfsError
from ..run import CommandFailed, CommandNotFound, Runner, default_runner, run_live  # noqa: F401 (run_live re-exported)

BINDS = ("/dev", "/proc", "/sys", "/run")
POLICY_RC_D = "usr/sbin/policy-rc.d"
POLICY_SCRIPT = "#!/bin/sh\n# Installed by bootenv for the duration of a chrooted apt run: start no services.\nexit 101\n"
SAVED_SUFFIX = ".bootenv-saved"


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ignore SIGINT for the duration (main thread only), so cleanup that
    must finish is not cut short by a second Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class Chroot:
    """A BE mounted with /dev /proc /sys /run bound in and services
    blocked, for `with`: `with Chroot(engine, "new") as root: root.run([...])`.

    `runner` runs mount/umount (default: the process-wide Runner);
    `path` overrides where the BE is mounted (default engine.mount's)."""

    def __init__(
        self,
        engine,
        name: str,
        *,
        runner: Optional[Runner] = None,
        path: Optional[str] = None,
        binds: Sequence[str] = BINDS,
        warn: Callable[[str], None] = lambda msg: print(f"bootenv: {msg}", file=sys.stderr, flush=True),
    ):
        self.engine = engine
        self.name = name
        self.runner = runner or default_runner
        self.binds = tuple(binds)
        self.warn = warn
        self._want_path = path
        self.path: Optional[str] = None
        self._undo: list[tuple[str, Callable[[], None]]] = []

    # ------------------------------------------------------------ set up

    def __enter__(self) -> "Chroot":
        try:
            self._setup()
        except BaseException as exc:
            self._teardown(exc)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._teardown(exc)
        return False

    def _setup(self) -> None:
        self.path = self.engine.mount(self.name, self._want_path, private=True)
        self._undo.append((f"unmount boot environment {self.name}", lambda: self.engine.unmount(self.name)))
        for source in self.binds:
            target = os.path.join(self.path, source.lstrip("/"))
            os.makedirs(target, exist_ok=True)
            # In bootenv's own namespace the binds are slaves: unmounting
            # them can never propagate to the host's mounts.
            self.runner.run(["mount", "--rbind", source, target], mutating=True)
            self._undo.append((f"unmount {target}", lambda t=target: self._umount(t)))
        self._install_policy()
        # Undone first: nothing may still run inside when the mounts go.
        self._undo.append((f"stop the processes still running in {self.path}", self._stop_processes))

    def _stop_processes(self) -> None:
        if not self.runner.refuse(f"stop the processes still running in {self.path}"):
            stop_processes_inside(self.path, self.warn)

    def _install_policy(self) -> None:
        """Put a policy-rc.d that forbids starting services in place,
        keeping one the BE already had."""
        assert self.path is not None
        policy = os.path.join(self.path, POLICY_RC_D)
        if self.runner.refuse(f"install {policy} (exit 101: no services start)"):
            return
        os.makedirs(os.path.dirname(policy), exist_ok=True)
        saved = policy + SAVED_SUFFIX
        had_one = os.path.lexists(policy)
        if had_one:
            os.replace(policy, saved)

        def restore() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(policy)
            if had_one:
                os.replace(saved, policy)

        self._undo.append((f"remove {policy}", restore))
        with open(policy, "w", encoding="ascii") as f:
            f.write(POLICY_SCRIPT)
        os.chmod(policy, 0o755)

    def _umount(self, target: str) -> None:
        """Unmount a recursive bind; detach it lazily if it is busy."""
        try:
            self.runner.run(["umount", "-R", target], mutating=True)
        except CommandFailed as first:
            try:
                self.runner.run(["umount", "-R", "-l", target], mutating=True)
            except CommandFailed:
                raise first from None
            self.warn(f"{target} was busy; detached it lazily")

    # ------------------------------------------------------------ tear down

    def _teardown(self, pending: Optional[BaseException]) -> None:
        """Undo every step, newest first, whatever fails. Raise
        OperationFailed listing what could not be undone, unless another
        exception is already on its way (then warn: that one matters more)."""
        failures: list[str] = []
        crash_point("chroot-teardown", "before")
        with sigint_deferred():
            while self._undo:
                crash_point("chroot-teardown", "during")
                text, undo = self._undo.pop()
                try:
                    undo()
                except (BootenvError, ZfsError, OSError) as exc:  # keep undoing the rest
                    failures.append(f"{text}: {exc}")
        crash_point("chroot-teardown", "after")
        if failures:
            message = "could not clean up the chroot: " + "; ".join(failures)
            if pending is None:
                raise OperationFailed(message)
            self.warn(message)

    # ------------------------------------------------------------ run

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        tee: Optional[Callable[[str], None]] = None,
    ) -> int:
        """Run `argv` inside the chroot with live output; return its exit status."""
        if self.path is None:
            raise OperationFailed("the chroot is not set up (use it in a with block)")
        status, _ = run_live(["chroot", self.path, *argv], runner=self.runner, env=env, tee=tee)
        return status
