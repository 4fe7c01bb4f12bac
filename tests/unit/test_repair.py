"""bootenv repair on the fake: what it fixes, what it leaves alone, and
that -n and a refusal change nothing."""

from __future__ import annotations

import json

from bootenv.engine import RESIDUE_HINT
from bootenv.errors import EXIT_ABORTED
from bootenv.model import PROP_OPERATION, PROP_SNAPSHOT, PROP_TRIAL_BE
from bootenv.repair import repair
from bootenv.zfs.fake import FakeZfs
from bootenv.zfs.fake.store import to_dict

from .conftest import datasets


def test_a_clean_pool_needs_nothing(engine, run):
    report = repair(engine)
    assert report.found == [] and report.plan.steps == []
    result = run("repair")
    assert result.exit_code == 0 and "nothing to repair" in result.stdout
    assert RESIDUE_HINT not in run("list").stderr


def test_only_bootenvs_unneeded_snapshots_go(engine, zfs):
    zfs.snapshot(["rpool/ROOT/debian@admin"])  # the admin's: no mark
    zfs.snapshot(["rpool/ROOT/debian@stray"], {PROP_SNAPSHOT: "yes"})
    zfs.snapshot(["rpool/ROOT/debian@held"], {PROP_SNAPSHOT: "yes"})
    zfs.hold("rpool/ROOT/debian@held", "mine")
    engine.plan_create("ck").execute()  # debian@ck: needed by ck
    report = repair(engine)
    assert report.plan.destroys == ["destroy snapshot rpool/ROOT/debian@stray"]
    assert any("held" in line for line in report.explained)
    report.plan.execute()
    left = datasets(zfs)
    assert "rpool/ROOT/debian@admin" in left and "rpool/ROOT/debian@held" in left and "rpool/ROOT/debian@ck" in left
    assert "rpool/ROOT/debian@stray" not in left


def test_dry_run_and_refusal_change_nothing(state, run):
    zfs = FakeZfs.load(state)
    zfs.snapshot(["rpool/ROOT/debian@stray"], {PROP_SNAPSHOT: "yes"})
    zfs.set_props("rpool/ROOT", {PROP_OPERATION: "create x", PROP_TRIAL_BE: "gone"})
    zfs.save(state)
    before = to_dict(FakeZfs.load(state))
    result = run("repair", "-n", "--json")
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert found["done"] is False and len(found["found"]) == 3, found
    assert run("-n", "repair").exit_code == 0
    assert to_dict(FakeZfs.load(state)) == before
    result = run("repair")  # destroys: asks, and there is no terminal
    assert result.exit_code == EXIT_ABORTED
    assert to_dict(FakeZfs.load(state)) == before
    assert RESIDUE_HINT in run("status").stderr
    result = run("repair", "-y", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["done"] is True
    after = FakeZfs.load(state)
    assert not after.exists("rpool/ROOT/debian@stray")
    assert after.get_props("rpool/ROOT", [PROP_OPERATION, PROP_TRIAL_BE]) == {}
    assert RESIDUE_HINT not in run("status").stderr


def test_a_one_shot_naming_a_missing_be_falls_back_to_the_running_one(engine, boot, zfs):
    boot._write_oneshot("gone")  # as a BE destroyed behind bootenv's back, or a killed run
    assert engine.scan().next_boot == "rpool/ROOT/gone"
    assert engine.residue(engine.scan())
    report = repair(engine)
    assert any("gone" in line for line in report.found)
    report.plan.execute()
    assert boot.pending_oneshot() is None
    assert engine.scan().next_boot == "rpool/ROOT/debian"
    assert ("post_activate", "debian") in boot.calls
