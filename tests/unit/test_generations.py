"""Generations, selectors, rollback, multi-BE destroy, prune and the
space they free, on the fake ZFS."""

from __future__ import annotations

import pytest

from bootenv.engine import Engine
from bootenv.errors import BeNotFound, Refused, UsageError
from bootenv.model import PROP_GENERATION, PROP_LAST_GOOD, PROP_NEXT_GENERATION
from bootenv.retention import Policy
from bootenv.zfs.fake import MiB


def gen(engine, name):
    return engine.get(name).generation


def make(engine, name, **kw):
    return engine.plan_create(name, **kw).execute()


def reboot(engine, zfs):
    """What a reboot does, and the engine a bootenv run after it makes."""
    zfs.reboot("rpool")
    return Engine(zfs, engine.bootloader, clock=engine.clock, mount_base=engine.mount_base)


def used(zfs):
    return int(zfs.pool_get("rpool", "allocated"))


# ---------------------------------------------------------------- generations


def test_generations_are_monotonic_and_never_reused(engine, zfs):
    for name in ("a", "b", "c"):
        make(engine, name)
    assert [gen(engine, n) for n in ("a", "b", "c")] == [1, 2, 3]
    engine.plan_destroy("c").execute()
    make(engine, "d")
    assert gen(engine, "d") == 4  # the counter survives destroying the newest
    # the counter is on the BE root, local; no BE inherits it as its own generation
    assert zfs.get_props("rpool/ROOT", [PROP_NEXT_GENERATION]) == {PROP_NEXT_GENERATION: "5"}
    assert PROP_GENERATION not in zfs.get_props("rpool/ROOT", [PROP_GENERATION])
    assert gen(engine, "debian") is None  # made before bootenv: none


def test_generation_survives_rename_and_promote(engine, zfs):
    make(engine, "a")
    engine.plan_rename("a", "b").execute()
    engine.plan_activate("b").execute()  # promotes b
    assert gen(engine, "b") == 1


def test_a_lost_counter_never_goes_back(engine, zfs):
    make(engine, "a")
    make(engine, "b")
    zfs.inherit("rpool/ROOT", PROP_NEXT_GENERATION)
    make(engine, "c")
    assert gen(engine, "c") == 3


# ---------------------------------------------------------------- selectors


@pytest.fixture
def five(engine, zfs, clock):
    for i in range(1, 6):
        make(engine, f"c{i}")
        clock.tick(86400)
    return engine


@pytest.mark.parametrize(
    "selector, name",
    [("c2", "c2"), ("2", "c2"), ("@running", "debian"), ("@next", "debian"), ("=c3", "c3")],
)
def test_select_one(five, selector, name):
    assert five.select(selector) == name


def test_select_back_from_the_running_one(five, zfs):
    five.plan_activate("c4").execute()
    engine = reboot(five, zfs)
    assert engine.select("-1") == "c3"
    assert engine.select("-3") == "c1"
    with pytest.raises(BeNotFound, match="only 3 generations"):
        engine.select("-4")


def test_select_last_good(five, zfs):
    zfs.set_props("rpool/ROOT", {PROP_LAST_GOOD: "c1"})
    assert five.select("@last-good") == "c1"
    with pytest.raises(UsageError, match="unknown selector"):
        five.select("@nope")


def test_ranges_and_ages_name_several(five):
    assert five.select_many(["2..4"]) == ["c2", "c3", "c4"]
    assert five.select_many(["4.."]) == ["c4", "c5"]
    assert five.select_many(["3d"]) == ["debian", "c1", "c2"]  # older than 3 days
    assert five.select_many(["c1", "1", "2..3"]) == ["c1", "c2", "c3"]  # each once
    with pytest.raises(UsageError, match="range"):
        five.select("2..4")
    with pytest.raises(UsageError, match="age"):
        five.select("3d")
    with pytest.raises(BeNotFound):
        five.select_many(["9..12"])


def test_a_name_that_reads_as_a_number(engine):
    make(engine, "2026")
    assert engine.select("=2026") == "2026"
    assert engine.select("1") == "2026"  # its generation
    with pytest.raises(BeNotFound, match="'=2026'"):
        engine.select("2026")


# ---------------------------------------------------------------- rollback


def test_rollback_goes_to_the_checkpoint_before_the_last_change_and_back(engine, zfs, clock):
    make(engine, "before-1", kind="hook")
    clock.tick()
    make(engine, "before-2", kind="hook")
    clock.tick()
    plan = engine.plan_rollback()
    assert plan.summary == "Roll back from debian to before-2"
    assert any(n.startswith("at the next boot: before-2") for n in plan.notes)
    plan.execute()
    engine = reboot(engine, zfs)
    assert engine.get("before-2").running
    clock.tick()
    # rolling back the rollback returns
    plan = engine.plan_rollback()
    assert plan.summary == "Roll back from before-2 to debian"
    plan.execute()
    engine = reboot(engine, zfs)
    assert engine.get("debian").running
    clock.tick()
    assert engine.plan_rollback().summary == "Roll back from debian to before-2"
    # a new change wins over the old rollback
    make(engine, "before-3", kind="hook")
    assert engine.plan_rollback().summary == "Roll back from debian to before-3"


def test_rollback_of_a_sandbox_goes_to_its_origin(engine, zfs, clock):
    make(engine, "upgraded", kind="apt")
    engine.plan_activate("upgraded").execute()
    engine = reboot(engine, zfs)
    clock.tick()
    running, target, why = engine.rollback_target()
    assert (running.name, target.name) == ("upgraded", "debian")


def test_rollback_with_nothing_before(engine):
    with pytest.raises(BeNotFound, match="nothing to roll back to"):
        engine.plan_rollback()


# ---------------------------------------------------------------- destroy several


def test_destroy_several_with_dependants_inside_the_set(engine, zfs):
    make(engine, "a")
    zfs.write("rpool/ROOT/a", 4 * MiB)
    make(engine, "b", source="a")
    make(engine, "c", source="b")
    plan = engine.plan_destroy(["a", "c", "b"])
    assert plan.summary == "Destroy 3 boot environments: c, b, a"
    assert not [s for s in plan.steps if s.kind == "promote"]
    plan.execute()
    assert [be.name for be in engine.list()] == ["debian"]
    zfs.check_invariants()


def test_destroy_several_promotes_a_dependant_outside(engine, zfs):
    make(engine, "a")
    make(engine, "b", source="a")
    make(engine, "c", source="a")
    plan = engine.plan_destroy(["a", "b"])
    assert [s.text for s in plan.steps if s.kind == "promote"] == [
        "promote rpool/ROOT/c (it takes the snapshots of rpool/ROOT/a up to @c)"
    ]
    plan.execute()
    assert [be.name for be in engine.list()] == ["debian", "c"]


def test_destroy_several_refuses_the_running_one(engine):
    make(engine, "a")
    with pytest.raises(Refused, match="running"):
        engine.plan_destroy(["a", "debian"])


# ---------------------------------------------------------------- space


def test_destroy_preview_equals_what_goes(engine, zfs):
    make(engine, "a")
    zfs.write("rpool/ROOT/a", 8 * MiB)
    zfs.delete("rpool/ROOT/debian", 16 * MiB)  # the origin snapshot alone holds it
    plan = engine.plan_destroy("a", reclaim=True)
    per, total = plan.reclaim
    before = used(zfs)
    plan.execute()
    assert total == before - used(zfs) == per["a"] == 24 * MiB


def test_prune_of_five_frees_what_it_says(engine, zfs, clock):
    for i in range(8):
        zfs.write("rpool/ROOT/debian", 2 * MiB)
        make(engine, f"h{i}", kind="hook")
        zfs.delete("rpool/ROOT/debian", 1 * MiB)  # held by this snapshot and the next
        clock.tick()
    plan = engine.plan_prune(Policy(keep_auto=3, keep_min=1))
    assert plan.result.destroyed == ["h4", "h3", "h2", "h1", "h0"]
    per, total = plan.reclaim
    before = used(zfs)
    plan.execute()
    assert total == before - used(zfs)
    assert total is not None and total > 0
    zfs.check_invariants()


def test_reclaim_of_a_be_with_dependants_is_unknown_not_wrong(engine):
    make(engine, "a")
    make(engine, "b", source="a")
    per, total = engine.reclaim(["a"])
    assert per == {"a": None} and total is None


# ---------------------------------------------------------------- prune


def test_prune_never_takes_protected_pinned_or_manual(engine, zfs, clock):
    for i in range(6):
        make(engine, f"h{i}", kind="hook")
        clock.tick()
    make(engine, "mine")
    engine.plan_keep("h0").execute()
    zfs.set_props("rpool/ROOT", {PROP_LAST_GOOD: "h1"})
    engine.plan_activate("h2").execute()
    plan = engine.plan_prune(Policy(keep_auto=0, keep_min=0))
    assert sorted(plan.result.destroyed) == ["h3", "h4", "h5"]
    reasons = {d.be.name: d.reason for d in plan.result.decisions}
    assert reasons["h0"].startswith("pinned") and reasons["h1"].startswith("last good")
    assert reasons["h2"] == "boots next" and reasons["mine"] == "manual" and reasons["debian"] == "running"
    plan.execute()
    engine.plan_keep("h0", False).execute()
    assert not engine.get("h0").keep


def test_prune_under_space_pressure_says_so(engine, zfs, clock, monkeypatch):
    for i in range(5):
        make(engine, f"h{i}", kind="hook")
        clock.tick()
    monkeypatch.setattr(engine, "free_percent", lambda: 3.0)
    plan = engine.plan_prune(Policy(keep_auto=10, keep_min=2))
    assert plan.result.pressure and plan.result.destroyed == ["h2", "h1", "h0"]
    assert plan.notes[0].startswith("space pressure: 3% of pool rpool is free")


def test_auto_prune_after_checkpoints_keeps_the_count_bounded(engine, zfs, clock, monkeypatch, tmp_path):
    conf = tmp_path / "bootenv.conf"
    conf.write_text("keep_auto = 4\nkeep_min = 2\n")
    monkeypatch.setenv("BOOTENV_CONFIG", str(conf))
    lines = []
    for i in range(12):
        be = make(engine, f"h{i:02}", kind="hook")
        lines.append(engine.auto_prune(be.name))
        clock.tick()
    assert len(engine.list()) == 1 + 4
    assert lines[:4] == [None] * 4
    assert lines[4] == "bootenv: retention: destroyed 1 old checkpoint: h00"
    conf.write_text("auto_prune = no\n")
    be = make(engine, "h99", kind="hook")
    assert engine.auto_prune(be.name) is None and len(engine.list()) == 6


def test_a_failing_preview_never_stops_a_destroy(engine, zfs):
    from bootenv.zfs.base import ZfsError

    make(engine, "a")
    zfs.fail_next("destroy_preview", ZfsError("pool is busy"))
    plan = engine.plan_destroy("a", reclaim=True)
    assert plan.reclaim is None and plan.notes[-1].startswith("cannot tell what this frees")
    plan.execute()


def test_prune_narrowed_by_selectors(engine, clock):
    for i in range(6):
        make(engine, f"h{i}", kind="hook")
        clock.tick(86400)
    plan = engine.plan_prune(Policy(keep_auto=2, keep_min=0), only=["1..2", "h3"])
    assert sorted(plan.result.destroyed) == ["h0", "h1", "h3"]
    assert {d.be.name: d.reason for d in plan.result.decisions}["h2"] == "not selected"
    assert engine.plan_prune(Policy(keep_auto=2, keep_min=0), only=["4d"]).result.destroyed == ["h1", "h0"]


# ---------------------------------------------------------------- the cap, legacy BEs


def test_auto_prune_destroys_at_most_its_cap_oldest_first(engine, clock, monkeypatch, tmp_path):
    conf = tmp_path / "bootenv.conf"
    conf.write_text("auto_prune = no\n")
    monkeypatch.setenv("BOOTENV_CONFIG", str(conf))
    for i in range(9):
        make(engine, f"h{i}", kind="hook")
        clock.tick()
    conf.write_text("keep_auto = 2\nkeep_min = 1\nauto_prune_max = 3\n")  # lowered: 7 may go
    be = make(engine, "h9", kind="hook")
    line = engine.auto_prune(be.name)
    assert line == "bootenv: retention: destroyed 3 old checkpoints: h2, h1, h0; 5 more at the next runs (auto_prune_max 3)"
    plan = engine.plan_prune(engine.policy())  # `bootenv prune` has no cap
    assert plan.result.destroyed == ["h7", "h6", "h5", "h4", "h3"]
    conf.write_text("keep_auto = 2\nkeep_min = 1\nauto_prune_max = 0\n")  # 0: no cap
    be = make(engine, "h10", kind="hook")
    assert engine.auto_prune(be.name) == "bootenv: retention: destroyed 6 old checkpoints: h8, h7, h6, h5, h4, h3"
    assert [b.name for b in engine.list()] == ["debian", "h9", "h10"]


def test_a_legacy_be_gets_no_generation_and_is_never_renumbered(engine, zfs, clock):
    """A BE an older bootenv made (org.bootenv: properties, no generation)
    keeps none through creates, rename, activate (promote) and prune; no
    number selects it; the generations of new BEs do not count it."""
    make(engine, "old", kind="hook")
    zfs.inherit("rpool/ROOT/old", PROP_GENERATION)
    zfs.inherit("rpool/ROOT", PROP_NEXT_GENERATION)  # an older bootenv kept no counter
    clock.tick()
    for name in ("a", "b"):
        make(engine, name, kind="hook")
        clock.tick()
    assert [gen(engine, n) for n in ("debian", "old", "a", "b")] == [None, None, 1, 2]
    engine.plan_rename("old", "older").execute()
    engine.plan_activate("older").execute()  # promotes it
    engine = reboot(engine, zfs)
    assert gen(engine, "older") is None and gen(engine, "debian") is None
    assert engine.select_many(["1..9"]) == ["a", "b"]
    with pytest.raises(BeNotFound):
        engine.select("-1")  # the running legacy BE has no generation to count back from
    engine.plan_activate("b").execute()
    engine = reboot(engine, zfs)
    assert engine.select("-1") == "a"  # legacy BEs are not in the count
    plan = engine.plan_prune(Policy(keep_auto=1, keep_min=1))
    assert plan.result.destroyed == ["a", "older"]  # no generation: the oldest
    plan.execute()
    make(engine, "c")
    assert gen(engine, "c") == 3 and gen(engine, "debian") is None
