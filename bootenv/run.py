"""The one way bootenv runs a program.

Every subprocess in bootenv (zfs, zpool, mount, umount, apt, chroot,
bootloader tools, trial checks) goes through `Runner.run`: an argv list
(never a shell string), LC_ALL=C so error messages can be matched, output
captured as text, and a typed `CommandFailed` carrying the command's stderr
when it fails. `Runner.live` (and `run_live`) is its counterpart for
commands whose output the user watches (apt's progress): not captured, or
streamed line by line to a `tee`.

Dry-run lives here too, so no caller can forget it: a call marked
`mutating=True` is not run under dry-run; bootenv says what it would have
run (`would run: zfs destroy rpool/ROOT/old`) and returns an empty success.
Read-only calls still run, so a dry-run shows real state.

The process-wide default `Runner` is what `run()` uses; the CLI turns
dry-run on with `set_dry_run(True)`. Backends and tests may instead hold
their own `Runner` (an injected flag, no global state).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from typing import Callable, Iterator, Mapping, Sequence

from .errors import OperationFailed



class _Log:
    """The "bootenv.run" logger, without importing logging (start-up time a
    listing need not pay): until something has imported logging (and so
    could have configured a handler), debug and info lines go nowhere,
    as they would with an unconfigured logging."""

    def __getattr__(self, name: str):
        if "logging" not in sys.modules and name in ("debug", "info"):
            return lambda *args, **kwargs: None
        import logging

        return getattr(logging.getLogger("bootenv.run"), name)


log = _Log()


class CommandFailed(OperationFailed):
    """A command exited non-zero (or could not be started).

    `argv`, `returncode`, `stdout` and `stderr` are kept so callers can map
    the failure to something more precise (the ZFS backends do)."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str = "", stderr: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = stderr.strip() or stdout.strip() or f"exit status {returncode}"
        super().__init__(f"{shlex.join(self.argv)}: {detail}")


class CommandNotFound(CommandFailed):
    """The program does not exist (or is not executable) on this machine."""

    def __init__(self, argv: Sequence[str], reason: str):
        super().__init__(argv, 127, "", f"{argv[0]}: {reason}")


def _echo_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Runner:
    """Runs commands; under `dry_run` refuses the mutating ones.

    `echo` receives the `would run: ...` lines (default: stderr).
    """

    def __init__(self, *, dry_run: bool = False, echo: Callable[[str], None] | None = None):
        self.dry_run = dry_run
        self.echo = echo or _echo_stderr

    def refuse(self, description: str) -> bool:
        """Given a mutation about to happen (a command line, or an in-process
        call such as `lzc_destroy rpool/x`), return True and report it when
        dry-run forbids it; False when it may go ahead."""
        if not self.dry_run:
            return False
        line = f"would run: {description}"
        log.info(line)
        self.echo(line)
        return True

    @staticmethod
    def _env(env: Mapping[str, str] | None) -> dict[str, str]:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        full_env["LC_ALL"] = "C"
        return full_env

    @staticmethod
    def _argv(argv: Sequence[str]) -> list[str]:
        if isinstance(argv, (str, bytes)):
            raise TypeError("run() takes an argv list, never a shell string")
        argv = [os.fspath(a) for a in argv]
        if not argv:
            raise ValueError("run() needs a program to run")
        return argv

    def run(
        self,
        argv: Sequence[str],
        *,
        mutating: bool = False,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` with LC_ALL=C and captured text output. Return the
        CompletedProcess. Raise CommandFailed on a non-zero exit when
        `check`, CommandNotFound if the program is missing. Under dry-run a
        `mutating` call is only reported, and returns exit 0 with no output."""
        argv = self._argv(argv)
        if mutating and self.refuse(shlex.join(argv)):
            return subprocess.CompletedProcess(argv, 0, "", "")
        log.debug("run: %s", shlex.join(argv))
        with _not_found(argv):
            proc = subprocess.run(
                argv,
                input=input,
                env=self._env(env),
                capture_output=True,
                text=True,
                errors="surrogateescape",
                stdin=None if input is not None else subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None):
        """Start a read-only `argv` now (LC_ALL=C, output captured) and
        return a call that waits for it and gives what run(argv) would:
        the CompletedProcess, or CommandFailed / CommandNotFound raised.
        For a command whose output is small (it waits in the pipe) run
        beside another."""
        argv = self._argv(argv)
        log.debug("start: %s", shlex.join(argv))
        with _not_found(argv):
            proc = subprocess.Popen(argv, env=self._env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="surrogateescape")

        def wait() -> subprocess.CompletedProcess[str]:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise CommandFailed(argv, proc.returncode, out, err)
            return subprocess.CompletedProcess(argv, proc.returncode, out, err)

        return wait

    def live(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        tee: Callable[[str], None] | None = None,
        mutating: bool = True,
        interrupt_wait: float = 30.0,
    ) -> tuple[int, str]:
        """Run `argv` with the terminal (not captured) so its progress shows
        live; with `tee`, read its output line by line, hand each line to
        `tee` and also return it. LC_ALL=C as for `run`; under dry-run a
        `mutating` command is only reported (exit 0). Return (exit status,
        captured output). On Ctrl-C wait up to `interrupt_wait` seconds for
        the command (it got the SIGINT too), then terminate it, before
        re-raising, so nothing it holds stays busy. Raise CommandNotFound if
        the program is missing."""
        argv = self._argv(argv)
        if mutating and self.refuse(shlex.join(argv)):
            return 0, ""
        log.debug("run live: %s", shlex.join(argv))
        with _not_found(argv):
            proc = subprocess.Popen(
                argv,
                env=self._env(env),
                stdout=subprocess.PIPE if tee else None,
                stderr=subprocess.STDOUT if tee else None,
                text=True,
                errors="replace",
                bufsize=1,
            )
        lines: list[str] = []
        try:
            if tee and proc.stdout is not None:
                for line in proc.stdout:
                    line = line.rstrip("\n")
                    lines.append(line)
                    tee(line)
            return proc.wait(), "\n".join(lines)
        except KeyboardInterrupt:
            try:
                proc.wait(timeout=interrupt_wait)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait()
            raise


    def stream(
        self,
        argv: Sequence[str],
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        on_stderr: Callable[[str], None] | None = None,
        mutating: bool = True,
    ) -> tuple[int, str]:
        """Run `argv` with its stdin/stdout on the given file descriptors
        (a zfs send/receive stream flows between the program and the file
        or pipe, never through Python), its stderr read line by line and
        handed to `on_stderr` (progress) as it comes. Return (exit status,
        the stderr text). Under dry-run a `mutating` command is only
        reported. Raise CommandNotFound."""
        argv = self._argv(argv)
        if mutating and self.refuse(shlex.join(argv)):
            return 0, ""
        log.debug("run streaming: %s", shlex.join(argv))
        with _not_found(argv):
            proc = subprocess.Popen(
                argv,
                env=self._env(None),
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                bufsize=1,
            )
        lines: list[str] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                line = line.rstrip("\n")
                lines.append(line)
                if on_stderr:
                    on_stderr(line)
            return proc.wait(), "\n".join(lines)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise


@contextlib.contextmanager
def _not_found(argv: list[str]) -> Iterator[None]:
    """Starting a program that is missing (or not executable) raises
    CommandNotFound, for `run` and `live` alike."""
    try:
        yield
    except FileNotFoundError:
        raise CommandNotFound(argv, "command not found") from None
    except PermissionError as exc:
        raise CommandNotFound(argv, f"cannot execute: {exc.strerror}") from None


# The process-wide runner `run()` uses; the CLI sets dry-run on it.
default_runner = Runner()


def set_dry_run(on: bool) -> None:
    """Turn dry-run on or off for every caller of `run()`."""
    default_runner.dry_run = on


def run(
    argv: Sequence[str],
    *,
    mutating: bool = False,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`Runner.run` on the process-wide default runner."""
    return default_runner.run(argv, mutating=mutating, check=check, input=input, env=env, timeout=timeout)


def run_live(
    argv: Sequence[str],
    *,
    runner: Runner | None = None,
    env: Mapping[str, str] | None = None,
    tee: Callable[[str], None] | None = None,
    mutating: bool = True,
    interrupt_wait: float = 30.0,
) -> tuple[int, str]:
    """`Runner.live` on `runner` (default: the process-wide runner)."""
    return (runner or default_runner).live(argv, env=env, tee=tee, mutating=mutating, interrupt_wait=interrupt_wait)
