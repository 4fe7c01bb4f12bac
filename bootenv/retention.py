"""The retention policy: which boot environments `bootenv prune` (and the
automatic retention after a hook or apt checkpoint) takes, decided from
values only (no ZFS here): the BEs of one listing, what protects some of
them, the pool's free space and the settings of bootenv.conf.

Rules, in order (the first that applies decides):
  1. never a BE that is protected: running, next boot, bootfs, last good,
     in a trial boot (the engine says which and why);
  2. never a BE bootenv did not make (no org.bootenv: properties);
  3. never a pinned one (`bootenv keep`);
  4. never a manual one, unless manual BEs are asked for (--manual);
  5. of the rest (automatic: kind hook or apt), newest first: the first
     `keep_min` always stay; under space pressure (pool free below
     `space_floor` percent) nothing more stays; otherwise the first
     `keep_auto` stay, and so does any younger than `keep_age`.
Whatever goes is destroyed as `bootenv destroy` would (dependants are
promoted first, so no other BE loses its origin). The automatic prune
destroys at most `auto_max` of them per run, the oldest (`cap`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Sequence

from .errors import UsageError
from .model import BootEnv

AUTOMATIC = ("hook", "apt")
_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

KEEP = "keep"
DESTROY = "destroy"


def parse_duration(text: str) -> int:
    """`30d`, `12h`, `2w`, `90m`, `45s` (a bare number is days) -> seconds.
    Raise UsageError."""
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"not a duration: {text!r} (use e.g. 30d, 12h, 2w)")
    return int(m[1]) * _UNIT[m[2]]


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "on", "true", "1"):
        return True
    if value in ("no", "off", "false", "0"):
        return False
    raise UsageError(f"not yes or no: {text!r}")


@dataclass(frozen=True)
class Policy:
    """The settings (bootenv.conf keys in brackets; defaults as shipped)."""

    keep_auto: int = 10  # [keep_auto] the newest N automatic checkpoints stay
    keep_age: int = 0  # [keep_age] seconds: automatic ones younger than this stay (0: none)
    keep_min: int = 3  # [keep_min] this many newest stay whatever the age or the space
    space_floor: int = 20  # [space_floor] percent of the pool free below which only keep_min stay
    manual: bool = False  # [prune_manual] manual BEs are candidates too
    auto: bool = True  # [auto_prune] retention after each hook/apt checkpoint
    # [auto_prune_max] the most one automatic prune destroys (0: no cap), so
    # an apt run after a lowered keep_auto, or on a pool full of old
    # checkpoints, is not held up by dozens of destroys: the rest go at the
    # next runs, oldest first
    auto_max: int = 5

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> "Policy":
        """Given bootenv.conf's settings (config.read), return the policy.
        Raise UsageError naming a bad value."""
        policy = cls()
        try:
            if "keep_auto" in settings:
                policy = replace(policy, keep_auto=_count(settings["keep_auto"]))
            if "keep_age" in settings:
                policy = replace(policy, keep_age=parse_duration(settings["keep_age"]))
            if "keep_min" in settings:
                policy = replace(policy, keep_min=_count(settings["keep_min"]))
            if "space_floor" in settings:
                policy = replace(policy, space_floor=_percent(settings["space_floor"]))
            if "prune_manual" in settings:
                policy = replace(policy, manual=parse_bool(settings["prune_manual"]))
            if "auto_prune" in settings:
                policy = replace(policy, auto=parse_bool(settings["auto_prune"]))
            if "auto_prune_max" in settings:
                policy = replace(policy, auto_max=_count(settings["auto_prune_max"]))
        except UsageError as exc:
            raise UsageError(f"bootenv.conf: {exc}") from None
        return policy


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise UsageError(f"not a count: {text!r}")
    return int(text)


def _percent(text: str) -> int:
    value = text.strip().rstrip("%")
    if not value.isdigit() or int(value) > 100:
        raise UsageError(f"not a percentage: {text!r}")
    return int(value)


@dataclass(frozen=True)
class Decision:
    be: BootEnv
    action: str  # KEEP or DESTROY
    reason: str


def newest_first(bes: Sequence[BootEnv]) -> list[BootEnv]:
    return sorted(bes, key=lambda be: (be.generation or 0, be.created or 0, be.createtxg), reverse=True)


def decide(
    bes: Sequence[BootEnv],
    policy: Policy,
    *,
    now: int,
    protected: Mapping[str, str],
    free_percent: Optional[float] = None,
) -> tuple[list[Decision], bool]:
    """Given every BE, the policy, the clock, the protected BEs (name ->
    why) and the pool's free space in percent, return (a decision for
    every BE, newest first; whether the pool is under space pressure)."""
    pressure = free_percent is not None and free_percent < policy.space_floor
    decisions: list[Decision] = []
    rank = 0
    for be in newest_first(bes):
        candidate = be.ours and not be.keep and (be.kind in AUTOMATIC or policy.manual)
        if candidate:
            rank += 1
        if be.name in protected:
            decisions.append(Decision(be, KEEP, protected[be.name]))
        elif not be.ours:
            decisions.append(Decision(be, KEEP, "not made by bootenv"))
        elif be.keep:
            decisions.append(Decision(be, KEEP, "pinned (bootenv keep)"))
        elif not candidate:
            decisions.append(Decision(be, KEEP, "manual"))
        elif rank <= policy.keep_min:
            decisions.append(Decision(be, KEEP, f"among the newest {policy.keep_min} (keep_min)"))
        elif pressure:
            decisions.append(Decision(be, DESTROY, f"space: pool free below {policy.space_floor}%"))
        elif rank <= policy.keep_auto:
            decisions.append(Decision(be, KEEP, f"among the newest {policy.keep_auto} (keep_auto)"))
        elif policy.keep_age and be.created and now - be.created < policy.keep_age:
            decisions.append(Decision(be, KEEP, "younger than keep_age"))
        else:
            decisions.append(Decision(be, DESTROY, f"older than the newest {policy.keep_auto}"))
    return decisions, pressure


def cap(decisions: Sequence[Decision], limit: int) -> list[Decision]:
    """Given decisions newest first, keep all but the oldest `limit` of
    those that destroy (0: no limit); the others stay until a later run."""
    doomed = [i for i, d in enumerate(decisions) if d.action == DESTROY]
    spared = set(doomed[: max(len(doomed) - limit, 0)]) if limit else set()
    return [Decision(d.be, KEEP, f"over the cap of {limit} per automatic prune (auto_prune_max): a later run")
            if i in spared else d for i, d in enumerate(decisions)]
