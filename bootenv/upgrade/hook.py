"""The apt hook: a checkpoint before a plain `apt upgrade` too.

contrib/apt/80bootenv makes apt run `bootenv hook pre-invoke` before it
calls dpkg (DPkg::Pre-Invoke) and `bootenv hook post-invoke` after
(DPkg::Post-Invoke). pre-invoke takes a checkpoint of the running BE
(kind=hook, state unfinished-apt); post-invoke marks it complete. If dpkg
fails and apt skips Post-Invoke, the checkpoint stays `unfinished-apt`:
"the change after it is not known to have finished". The checkpoint itself
is whole (state `pending` is only ever a half-made create), so it can be
activated: it is what an admin rolls back to.

One checkpoint per apt run, not per dpkg call: apt runs Pre-Invoke before
every dpkg batch, and unattended-upgrades commits many batches from one
process. The hook identifies the run by the apt front end (the nearest
ancestor that is not a shell: apt, apt-get, unattended-upgrade, aptitude;
or, for a child it forked without exec, as unattended-upgrades does for
each of its steps, the process it came from) by pid, its start time in /proc/PID/stat (pids are reused, start times
with them are not) and the boot id, and remembers the last run it
checkpointed in /run (a tmpfs: a reboot forgets it, as it should).

Skipped, quietly: when bootenv drives apt itself (BOOTENV_APT is set: it
has taken its own checkpoint), when BOOTENV_HOOK=off, and when apt runs
inside a chroot (a mounted BE, a debootstrap: the running root is not
what is being changed).

A hook must never stop apt: every failure is printed as one line saying
that no checkpoint was taken and why, and the hook exits 0.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping, Optional

from ..apt.packages import ENV_DRIVEN
from ..model import STATE_UNFINISHED_APT, make_title

ENV_SWITCH = "BOOTENV_HOOK"  # "off" disables the hook
ENV_STATE = "BOOTENV_HOOK_STATE"  # where the last run is remembered (tests)
DEFAULT_STATE = "/run/bootenv/.hook-run"  # a dot name: never a BE mount point
MAX_CMDLINE = 1000  # kept in user properties: well inside ZFS's 8 KiB
SHELLS = frozenset({"sh", "dash", "bash", "busybox", "env", "nice", "ionice", "flock", "timeout"})


@dataclass(frozen=True)
class Frontend:
    """The process that drives apt for this run."""

    pid: int
    start: str  # field 22 of /proc/PID/stat: start time in clock ticks after boot
    boot: str
    cmdline: str

    @property
    def run_id(self) -> str:
        return f"{self.boot}:{self.pid}:{self.start}"


def _stat(proc: str, pid: int) -> tuple[str, int, str]:
    """(comm, ppid, starttime) of a process, from /proc/PID/stat (the
    command name is in parentheses and may itself contain spaces)."""
    with open(f"{proc}/{pid}/stat", encoding="utf-8", errors="replace") as f:
        text = f.read()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, starttime field 22
    return comm, int(rest[1]), rest[19]


def _cmdline(proc: str, pid: int) -> str:
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            args = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return ""
    return shlex.join(args)


def find_frontend(start_pid: Optional[int] = None, proc: str = "/proc") -> Frontend:
    """Walk up from `start_pid` (default: our parent) past shells to the
    process that runs apt. Raise OSError if /proc cannot tell."""
    pid = start_pid if start_pid is not None else os.getppid()
    for _ in range(16):
        comm, ppid, start = _stat(proc, pid)
        if comm not in SHELLS or ppid <= 1:
            break
        pid = ppid
    # A child forked from the front end without exec (unattended-upgrades
    # forks one per MinimalSteps step and dpkg runs from it) has its
    # parent's command line: the run is the parent's.
    cmdline = _cmdline(proc, pid)
    for _ in range(16):
        if ppid <= 1 or not cmdline or _cmdline(proc, ppid) != cmdline:
            break
        pid = ppid
        comm, ppid, start = _stat(proc, pid)
    try:
        with open(f"{proc}/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = "?"
    return Frontend(pid, start, boot, (cmdline or comm)[:MAX_CMDLINE])


def in_chroot(proc: str = "/proc") -> bool:
    """Whether this process runs in a chroot (its / is not PID 1's)."""
    try:
        mine = os.stat("/")
        init = os.stat(f"{proc}/1/root/.")
    except OSError:
        return False  # cannot tell (no /proc, not root): assume not
    return (mine.st_dev, mine.st_ino) != (init.st_dev, init.st_ino)


def _state_path(env: Mapping[str, str]) -> str:
    return env.get(ENV_STATE) or DEFAULT_STATE


def _remembered(path: str) -> tuple[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            run_id, _, name = f.read().strip().partition(" ")
        return run_id, name
    except OSError:
        return "", ""


def _remember(path: str, run_id: str, name: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{run_id} {name}\n")
    os.replace(tmp, path)


def skip_reason(env: Mapping[str, str], proc: str = "/proc") -> Optional[str]:
    """Why the hook does nothing this time, or None if it should act."""
    if env.get(ENV_DRIVEN):
        return "bootenv drives this apt run and took its own checkpoint"
    if env.get(ENV_SWITCH, "").lower() in ("off", "0", "no", "false"):
        return f"{ENV_SWITCH}=off"
    if in_chroot(proc):
        return "apt runs in a chroot, not on the running system"
    return None


def pre_invoke(
    engine_factory: Callable[[], object],
    *,
    env: Mapping[str, str] = os.environ,
    proc: str = "/proc",
    frontend: Optional[Frontend] = None,
    say: Callable[[str], None] = print,
    lock: Optional[Callable[[], object]] = None,
) -> Optional[str]:
    """Take the checkpoint for this apt run unless one was taken already
    (or the hook is to be skipped). Return the new BE's name, or None.
    Raise BootenvError (the caller prints it and lets apt go on)."""
    if skip_reason(env, proc):
        return None
    frontend = frontend or find_frontend(proc=proc)
    state = _state_path(env)
    done_id, done_name = _remembered(state)
    if done_id == frontend.run_id:
        return None  # this apt run has its checkpoint already
    from ..lock import exclusive

    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    with (lock() if lock else exclusive(command="bootenv hook pre-invoke")):
        from ..crash import crash_point

        engine = engine_factory()
        # One menu regeneration for the checkpoint and the retention after
        # it (GRUB: one update-grub, not two). Should it fail, the
        # checkpoint stays (it is whole; the next menu update lists it).
        from ..errors import BootenvError

        be, menu, retention = None, None, None
        crash_point("checkpoint", "before")
        try:
            with engine.bootloader.batch():
                be = engine.plan_create(
                    None,
                    kind="hook",
                    title=make_title(f"before {frontend.cmdline} ({when})"),
                    command=frontend.cmdline,
                    state=STATE_UNFINISHED_APT,
                ).execute()
                crash_point("checkpoint", "after")
                _remember(state, frontend.run_id, be.name)  # first: whatever retention meets, one checkpoint a run
                retention = auto_prune(engine, be.name)
        except (BootenvError, OSError) as exc:
            if be is None:
                raise
            menu = f"bootenv: the boot menu was not updated: {exc}"
    say(f"bootenv: checkpoint {be.name} taken before this apt run (to go back: bootenv activate {be.name})")
    for line in (retention, menu):
        if line:
            say(line)
    return be.name


def auto_prune(engine, just_taken: str) -> Optional[str]:
    """The automatic retention after a checkpoint, as one line; a failure
    is that line too, never an error (apt goes on)."""
    from ..errors import BootenvError
    from ..zfs.base import ZfsError

    try:
        return engine.auto_prune(just_taken)
    except (BootenvError, ZfsError, OSError) as exc:
        return f"bootenv: retention: nothing pruned: {exc}"


def post_invoke(
    engine_factory: Callable[[], object],
    *,
    env: Mapping[str, str] = os.environ,
    proc: str = "/proc",
    frontend: Optional[Frontend] = None,
) -> Optional[str]:
    """Mark this run's checkpoint complete. Return its name, or None when
    this run has none."""
    if skip_reason(env, proc):
        return None
    frontend = frontend or find_frontend(proc=proc)
    done_id, name = _remembered(_state_path(env))
    if done_id != frontend.run_id or not name:
        return None
    from ..model import PROP_STATE, STATE_COMPLETE

    from ..crash import crash_point

    crash_point("mark-complete", "before")
    engine_factory().set_metadata(name, {PROP_STATE: STATE_COMPLETE})
    crash_point("mark-complete", "after")
    return name
