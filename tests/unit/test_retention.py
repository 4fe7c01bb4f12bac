"""The retention policy as tables: for a pool state (the BEs, what
protects some, free space) and a configuration, which BEs go."""

from __future__ import annotations

import pytest

from bootenv.errors import UsageError
from bootenv.model import BootEnv
from bootenv.retention import DESTROY, KEEP, Policy, decide, parse_duration

NOW = 1_800_000_000
DAY = 86400


def be(name, gen, kind="hook", *, age_days=0.0, keep=False, ours=True):
    return BootEnv(
        name=name, dataset=f"rpool/ROOT/{name}", active=False, running=False, createtxg=gen,
        created=int(NOW - age_days * DAY), used=0, referenced=0, origin=None, origin_be=None,
        title="", kind=kind if ours else None, command=None, state="complete", mounted=False,
        children=(), generation=gen if ours else None, keep=keep, ours=ours,
    )


# A sample pool: the installer's BE (not bootenv's), a manual BE, twelve
# hook checkpoints (h1 oldest, 12 days ago .. h12 today), h3 pinned.
SAMPLE = [
    be("debian", 0, ours=False),
    be("before-php", 1, "manual", age_days=40),
    *[be(f"h{i}", i + 1, age_days=12 - i, keep=(i == 3)) for i in range(1, 13)],
]
RUNNING = {"debian": "running"}


def gone(bes, policy, protected=RUNNING, free=50.0):
    decisions, pressure = decide(bes, policy, now=NOW, protected=protected, free_percent=free)
    return sorted(d.be.name for d in decisions if d.action == DESTROY), pressure


@pytest.mark.parametrize(
    "policy, protected, free, expected, pressure",
    [
        # defaults: the newest 10 automatic stay (h3 is pinned: kept, and not counted)
        (Policy(), RUNNING, 50.0, ["h1"], False),
        # keep 5: h1..h7 are beyond it; h3 pinned
        (Policy(keep_auto=5), RUNNING, 50.0, ["h1", "h2", "h4", "h5", "h6", "h7"], False),
        # an age keeps the young ones beyond the count (h6 is 6 days old)
        (Policy(keep_auto=5, keep_age=7 * DAY), RUNNING, 50.0, ["h1", "h2", "h4", "h5"], False),
        # keep_min wins over a smaller keep_auto
        (Policy(keep_auto=0, keep_min=3), RUNNING, 50.0, ["h1", "h2", "h4", "h5", "h6", "h7", "h8", "h9"], False),
        # space pressure: down to keep_min whatever keep_auto and keep_age say
        (Policy(keep_auto=10, keep_age=30 * DAY, keep_min=2), RUNNING, 5.0, ["h1", "h2", "h4", "h5", "h6", "h7", "h8", "h9", "h10"], True),
        # just above the floor: no pressure
        (Policy(space_floor=20), RUNNING, 20.0, ["h1"], False),
        # protected ones are never taken, whatever their rank
        (Policy(keep_auto=5), {**RUNNING, "h1": "boots next", "h2": "last good", "h4": "trial boot"}, 50.0, ["h5", "h6", "h7"], False),
        # manual BEs only when asked; the installer's BE (no org.bootenv:) never
        (Policy(keep_auto=5, manual=True), RUNNING, 50.0, ["before-php", "h1", "h2", "h4", "h5", "h6", "h7"], False),
        # nothing to do
        (Policy(keep_auto=20), RUNNING, 50.0, [], False),
    ],
)
def test_which_bes_go(policy, protected, free, expected, pressure):
    got, under = gone(SAMPLE, policy, protected, free)
    assert sorted(got, key=lambda n: (n[0] != "b", n)) == sorted(expected, key=lambda n: (n[0] != "b", n))
    assert under == pressure


def test_not_ours_is_kept_even_with_manual_and_pressure():
    got, _ = gone(SAMPLE, Policy(keep_auto=0, keep_min=0, manual=True), RUNNING, 1.0)
    assert "debian" not in got and "h3" not in got


def test_every_be_has_a_reason_newest_first():
    decisions, _ = decide(SAMPLE, Policy(), now=NOW, protected=RUNNING, free_percent=50.0)
    assert [d.be.name for d in decisions][:2] == ["h12", "h11"]
    reasons = {d.be.name: d.reason for d in decisions}
    assert reasons["debian"] == "running"
    assert reasons["h3"].startswith("pinned")
    assert reasons["before-php"] == "manual"
    assert all(d.action in (KEEP, DESTROY) for d in decisions)


def test_settings_and_their_errors():
    p = Policy.from_settings({"keep_auto": "4", "keep_age": "2w", "keep_min": "1", "space_floor": "15%", "prune_manual": "yes", "auto_prune": "off"})
    assert p == Policy(keep_auto=4, keep_age=14 * DAY, keep_min=1, space_floor=15, manual=True, auto=False)
    assert Policy().auto_max == 5 and Policy.from_settings({"auto_prune_max": "0"}).auto_max == 0
    for bad in ({"keep_auto": "-1"}, {"keep_age": "soon"}, {"space_floor": "120"}, {"auto_prune": "maybe"}, {"auto_prune_max": "lots"}):
        with pytest.raises(UsageError, match="bootenv.conf"):
            Policy.from_settings(bad)
    assert parse_duration("30d") == 30 * DAY and parse_duration("12h") == 12 * 3600 and parse_duration("3") == 3 * DAY
