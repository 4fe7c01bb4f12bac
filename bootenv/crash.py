"""The crash seam, a testing aid: BOOTENV_CRASH_AT makes bootenv SIGKILL
itself at one point, so tests can see what a crash (power loss, kill -9,
OOM) between two steps leaves, and that `bootenv repair` cleans it up.

    BOOTENV_CRASH_AT=POINT[:before|after]   (before when not said)

POINT is one of
  - a plan step's kind (plan.Kind: snapshot, clone, destroy, ...): its
    first step of that kind; KIND#N: the N-th step of that kind (from 1);
  - a plan step's number (1 is the first step of the first plan run);
  - a named point outside plans (NAMED below): the apt paths, the trial,
    the bootloader writes.

Unset or empty: a no-op costing one dictionary lookup. SIGKILL, not an
exception: nothing of bootenv's (no undo, no finally, no atexit) runs, as
after a real crash. This module imports nothing of bootenv's, so every
layer may call it.
"""

from __future__ import annotations

import os
import signal
from typing import Optional

ENV_VAR = "BOOTENV_CRASH_AT"
HOW_VAR = "BOOTENV_CRASH_HOW"  # "hang": stop at the point instead of dying (power-cut tests)

# The points outside plans, where they are (for the man page and tests).
NAMED = {
    "checkpoint": "an apt path: the checkpoint (in place) or the clone (sandbox) is being made",
    "apt": "an apt path: apt (the package runner) is running",
    "mark-complete": "an apt path: marking the checkpoint complete/failed after apt",
    "chroot-teardown": "the sandbox: unmounting the chroot after apt",
    "trial-boot-started": "bootenv boot-started (trial.py)",
    "trial-confirm": "bootenv confirm",
    "trial-fallback": "bootenv fallback",
    "grub-env": "the GRUB driver writes grubenv (grub-editenv)",
    "sdboot-entry": "the systemd-boot driver writes a loader entry",
    "sdboot-kernel": "the systemd-boot driver copies a kernel into the ESP's store",
    "bootfs": "the pool's bootfs is set",
}


def _wanted() -> Optional[tuple[str, str]]:
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return None
    point, _, when = spec.partition(":")
    return point.strip(), (when.strip() or "before")


def crash_point(name: str, when: str = "before") -> None:
    """SIGKILL this process if BOOTENV_CRASH_AT names point `name` at `when`."""
    wanted = _wanted()
    if wanted is not None and wanted == (name, when):
        die()


# Steps seen by every plan this process ran: numbers and kinds count
# across plans (a dist-upgrade runs several), so each point is met once.
_seen = {"steps": 0}
_kinds: dict[str, int] = {}


def plan_step(kind: str, when: str, plan_point: Optional[str] = None, number: int = 0) -> None:
    """Called by Plan.execute around each step (`when`: before or after);
    `plan_point` names the plan (trial-confirm: POINT#N is its N-th step,
    `number`, from 1)."""
    wanted = _wanted()
    if wanted is None:
        return
    if when == "before":
        _seen["steps"] += 1
        _kinds[kind] = _kinds.get(kind, 0) + 1
    point, at = wanted
    if at != when:
        return
    if point.isdigit() and int(point) == _seen["steps"]:
        die()
    name, _, nth = point.partition("#")
    if plan_point and name == plan_point and (int(nth) if nth.isdigit() else 1) == number:
        die()
    if name == kind and (int(nth) if nth.isdigit() else 1) == _kinds.get(kind):
        die()


def die() -> None:
    """As a crash: no cleanup of any kind (stdout is flushed first only so
    a test can see how far the command got). With BOOTENV_CRASH_HOW=hang,
    say so on stderr and wait here until killed instead: the VM suite then
    cuts the machine's power at exactly this point."""
    import sys

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: dying anyway
        pass
    if os.environ.get(HOW_VAR) == "hang":
        wanted = _wanted()
        try:
            sys.stderr.write(f"bootenv: {ENV_VAR}: hanging at {':'.join(wanted) if wanted else '?'}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr gone: hang without saying so
            pass
        while True:
            signal.pause()
    os.kill(os.getpid(), signal.SIGKILL)
