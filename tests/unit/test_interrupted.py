"""What an interrupted or half-failed plan leaves (issue 13's bugs), on the
fake: Ctrl-C undoes like an error, a destroy marks its BE first, a
dependant outside the BE root is refused before anything goes, a rename
whose bootfs update fails is renamed back."""

from __future__ import annotations

import pytest

from bootenv.engine import Engine
from bootenv.errors import OperationFailed, Refused
from bootenv.model import PROP_SNAPSHOT
from bootenv.plan import Kind, Plan
from bootenv.zfs.base import PermissionDenied
from bootenv.zfs.fake import FakeZfs

from .conftest import build_system, datasets


@pytest.fixture
def deep(clock, boot, tmp_path):
    fake = FakeZfs(clock=clock, strict=True)
    build_system(fake, deep=True)
    return fake, Engine(fake, boot, clock=clock, mount_base=str(tmp_path / "mnt"))


def test_ctrl_c_in_a_step_undoes_the_steps_before(engine, zfs):
    before = datasets(zfs)
    plan = engine.plan_create("ck")
    where = plan.index(Kind.MARK)
    real = plan.steps[where].action

    def interrupted() -> None:
        raise KeyboardInterrupt

    plan.steps[where].action = interrupted
    with pytest.raises(KeyboardInterrupt):
        plan.execute()
    assert datasets(zfs) == before  # no pending BE, no snapshot left
    assert real is not None


def test_ctrl_c_undo_keeps_going_when_an_undo_fails():
    calls = []
    plan = Plan("x")
    plan.add("a", lambda: calls.append("a"), undo=lambda: calls.append("undo a"))
    plan.add("b", lambda: calls.append("b"), undo=lambda: (_ for _ in ()).throw(OSError("gone")))
    plan.add("c", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        plan.execute()
    assert calls == ["a", "b", "undo a"]


def test_checkpoint_snapshots_carry_bootenv_mark(engine, zfs):
    engine.plan_create("ck").execute()
    assert zfs.get_props("rpool/ROOT/debian@ck", [PROP_SNAPSHOT]) == {PROP_SNAPSHOT: "yes"}


def test_destroy_marks_the_be_destroying_before_anything_goes(deep):
    zfs, engine = deep
    engine.plan_create("ck").execute()
    plan = engine.plan_destroy("ck")
    first = plan.steps[1]  # after recording the operation on the BE root
    assert first.kind == Kind.MARK and first.text == "mark ck destroying"
    # Killed after the child went: the BE says it is not whole.
    upto = next(i for i, s in enumerate(plan.steps) if s.text == "destroy rpool/ROOT/ck/var")
    for step in plan.steps[: upto + 1]:
        step.action()
    be = engine.get("ck")
    assert be.state == "destroying" and be.children == ()
    with pytest.raises(Refused, match="not whole.*interrupted"):
        engine.plan_activate("ck")
    # Finishing it works.
    engine.plan_destroy("ck").execute()
    assert "ck" not in [b.name for b in engine.list()]


def test_a_failed_destroy_restores_the_state(deep):
    zfs, engine = deep
    engine.plan_create("ck").execute()
    zfs.fail_next("destroy", PermissionDenied("no", "rpool/ROOT/ck/var"))
    with pytest.raises(OperationFailed):
        engine.plan_destroy("ck").execute()
    assert engine.get("ck").state == "complete"


def test_a_dependant_outside_the_be_root_is_refused_before_anything_goes(deep):
    zfs, engine = deep
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()  # ck owns the history now
    engine.plan_activate("debian").execute()
    zfs.snapshot(["rpool/ROOT/ck/var@mine"])
    zfs.clone("rpool/ROOT/ck/var@mine", "rpool/elsewhere")
    before = datasets(zfs)
    with pytest.raises(Refused, match="rpool/elsewhere outside rpool/ROOT"):
        engine.plan_destroy("ck")
    assert datasets(zfs) == before


def test_a_rename_whose_bootfs_update_fails_is_renamed_back(engine, zfs):
    engine.plan_create("ck").execute()
    zfs.pool_set("rpool", "bootfs", "rpool/ROOT/ck")  # the default, not running
    plan = engine.plan_rename("ck", "new")
    assert [s.kind for s in plan.steps][:2] == [Kind.RENAME, Kind.SET_BOOTFS]
    zfs.fail_next("pool_set", PermissionDenied("no", "rpool"))
    with pytest.raises(OperationFailed, match="undone"):
        plan.execute()
    assert zfs.exists("rpool/ROOT/ck") and not zfs.exists("rpool/ROOT/new")
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/ck"
