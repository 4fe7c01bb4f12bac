"""The engine on the fake ZFS: every operation asserted on ZFS state."""

from __future__ import annotations

import re

import pytest

from bootenv.boot.base import Bootloader
from bootenv.engine import Engine
from bootenv.errors import BeExists, BeNotFound, InvalidBeName, NoZfsRoot, OperationFailed, Refused, UsageError
from bootenv.model import PROP_COMMAND, PROP_KIND, PROP_ORIGIN_BE, PROP_SNAPSHOT, PROP_STATE, PROP_TITLE
from bootenv.plan import Kind
from bootenv.zfs.base import DatasetBusy
from bootenv.zfs.fake import MiB, FakeZfs

from .conftest import build_system, datasets


def names(engine: Engine) -> list[str]:
    return [be.name for be in engine.list()]


def props(zfs, name, *wanted):
    return zfs.get_props(name, list(wanted))


# ---------------------------------------------------------------- discovery


def test_discovers_running_be_and_be_root(engine):
    assert engine.running_dataset == "rpool/ROOT/debian"
    assert engine.be_root == "rpool/ROOT"
    [be] = engine.list()
    assert (be.name, be.active, be.running, be.flags) == ("debian", True, True, "AC")
    assert be.used >= 64 * MiB


def test_no_zfs_root_is_a_clear_error(clock):
    zfs = FakeZfs(clock=clock)
    zfs.create_pool("tank")
    with pytest.raises(NoZfsRoot, match="not on ZFS"):
        Engine(zfs)


def test_be_root_override_without_running_root(clock):
    zfs = FakeZfs(clock=clock)
    build_system(zfs)
    zfs.reboot  # noqa: B018  (the fake's root is mounted; pretend a rescue system:)
    engine = Engine(zfs, be_root="rpool/ROOT", running="rpool/ROOT/debian")
    assert names(engine) == ["debian"]
    nope = Engine(zfs, be_root="rpool/NOPE")  # building it reads nothing: the first listing says
    with pytest.raises(NoZfsRoot, match="does not exist"):
        nope.list()


def test_list_is_scoped_to_the_be_root(engine, zfs):
    zfs.create("rpool/ROOTX")
    zfs.create("rpool/ROOTX/other")
    assert names(engine) == ["debian"]


# ---------------------------------------------------------------- create


def test_create_checkpoints_running_be(engine, zfs, boot, clock):
    before = datasets(zfs, "rpool/home")
    be = engine.plan_create("before-upgrade", title="before php", command="bootenv create").execute()
    assert be.name == "before-upgrade" and not be.active and not be.running
    assert zfs.exists("rpool/ROOT/debian@before-upgrade")
    row = props(zfs, "rpool/ROOT/before-upgrade", "origin", "canmount", "mountpoint", PROP_TITLE,
                PROP_KIND, PROP_ORIGIN_BE, PROP_STATE, PROP_COMMAND)
    assert row["origin"] == "rpool/ROOT/debian@before-upgrade"
    assert row["canmount"] == "noauto" and row["mountpoint"] == "/"
    assert row[PROP_TITLE] == "before php" and row[PROP_KIND] == "manual"
    assert row[PROP_ORIGIN_BE] == "debian" and row[PROP_STATE] == "complete"
    assert row[PROP_COMMAND] == "bootenv create"
    assert props(zfs, "rpool/ROOT/debian@before-upgrade", PROP_SNAPSHOT)[PROP_SNAPSHOT] == "yes"
    assert be.created == int(clock.now)
    assert boot.calls == [("post_create", "before-upgrade")]
    assert datasets(zfs, "rpool/home") == before  # shared data untouched
    assert names(engine) == ["debian", "before-upgrade"]


def test_create_default_name_from_clock_and_unique(engine, zfs):
    first = engine.plan_create().execute()
    second = engine.plan_create().execute()
    assert re.fullmatch(r"be-\d{8}-\d{6}", first.name) and second.name == first.name + "-2"


def test_create_deep_be_snapshots_atomically_and_clones_children(clock):
    zfs = FakeZfs(clock=clock, strict=True)
    build_system(zfs, deep=True)
    engine = Engine(zfs, clock=clock)
    engine.plan_create("ck").execute()
    snaps = {d.name: d.createtxg for d in zfs.list("rpool/ROOT/debian", snapshots=True) if d.is_snapshot}
    assert set(snaps) == {"rpool/ROOT/debian@ck", "rpool/ROOT/debian/var@ck"}
    assert len(set(snaps.values())) == 1  # one transaction
    var = props(zfs, "rpool/ROOT/ck/var", "origin", "canmount", "mountpoint")
    assert var == {"origin": "rpool/ROOT/debian/var@ck", "canmount": "noauto", "mountpoint": "/var"}
    assert engine.get("ck").children == ("rpool/ROOT/ck/var",)


def test_create_from_another_be(engine, zfs):
    engine.plan_create("a").execute()
    be = engine.plan_create("b", source="a").execute()
    assert be.origin == "rpool/ROOT/a@b" and be.origin_be == "a"


@pytest.mark.parametrize("bad", ["", "a b", "x@y", "x/y", "-x", "%", "a" * 200])
def test_create_bad_name_changes_nothing(engine, zfs, bad):
    before = datasets(zfs)
    with pytest.raises(InvalidBeName):
        engine.plan_create(bad).execute()
    assert datasets(zfs) == before


def test_create_existing_name_refused(engine, zfs):
    before = datasets(zfs)
    with pytest.raises(BeExists, match="'debian' already exists"):
        engine.plan_create("debian")
    assert datasets(zfs) == before


def test_create_failure_midway_is_undone(engine, zfs, boot):
    before = datasets(zfs)
    zfs.fail_next("clone", DatasetBusy("injected", "rpool/ROOT/x"))
    with pytest.raises(OperationFailed, match="clone rpool/ROOT/debian@x as rpool/ROOT/x: injected .*undone"):
        engine.plan_create("x").execute()
    assert datasets(zfs) == before
    assert boot.calls == []


def test_checkpoint_costs_no_space(engine, zfs):
    used_before = props(zfs, "rpool", "used")["used"]
    be = engine.plan_create("ck").execute()
    assert be.used == 0 and be.referenced >= 64 * MiB
    assert props(zfs, "rpool", "used")["used"] == used_before


# ---------------------------------------------------------------- activate


def test_activate_promotes_sets_bootfs_and_runs_driver_phases(engine, zfs, boot):
    engine.plan_create("ck").execute()
    boot.calls.clear()
    engine.plan_activate("ck").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/ck"
    # promoted: the checkpoint owns the snapshot, the old BE is its clone
    assert props(zfs, "rpool/ROOT/ck", "origin").get("origin") is None
    assert props(zfs, "rpool/ROOT/debian", "origin")["origin"] == "rpool/ROOT/ck@ck"
    assert [c[0] for c in boot.calls] == ["pre_activate", "mid_activate", "post_activate"]
    flags = {be.name: be.flags for be in engine.list()}
    assert flags == {"debian": "C", "ck": "A"}


def test_activate_unknown_be(engine, zfs):
    before = datasets(zfs)
    with pytest.raises(BeNotFound, match="no boot environment named 'nope'"):
        engine.plan_activate("nope")
    assert datasets(zfs) == before


def test_activate_driver_refusal_changes_nothing(engine, zfs, boot):
    engine.plan_create("ck").execute()
    before = datasets(zfs)

    def refuse(be):
        raise Refused("kernel modules missing")

    boot.pre_activate = refuse
    with pytest.raises(Refused):
        engine.plan_activate("ck").execute()
    assert datasets(zfs) == before and zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"


# ---------------------------------------------------------------- destroy


def test_destroy_refuses_running_and_next_boot(engine, zfs):
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()
    before = datasets(zfs)
    with pytest.raises(Refused, match="running"):
        engine.plan_destroy("debian")
    with pytest.raises(Refused, match="boots next"):
        engine.plan_destroy("ck")
    assert datasets(zfs) == before


def test_destroy_checkpoint_removes_clone_and_its_origin_snapshot(engine, zfs, boot):
    engine.plan_create("ck").execute()
    plan = engine.plan_destroy("ck")
    assert plan.destroys == [
        "destroy rpool/ROOT/ck",
        "destroy snapshot rpool/ROOT/debian@ck (no boot environment needs it any more)",
    ]
    plan.execute()
    assert datasets(zfs, "rpool/ROOT") == ["rpool/ROOT", "rpool/ROOT/debian"]
    assert boot.calls[-1] == ("post_destroy", "ck")


def test_destroy_keeps_admin_snapshots_it_did_not_take(engine, zfs):
    zfs.snapshot(["rpool/ROOT/debian@admin"])
    zfs.clone("rpool/ROOT/debian@admin", "rpool/ROOT/manual", {"canmount": "noauto"})
    plan = engine.plan_destroy("manual")
    assert "keeping rpool/ROOT/debian@admin: bootenv did not take it" in plan.notes
    plan.execute()
    assert zfs.exists("rpool/ROOT/debian@admin") and not zfs.exists("rpool/ROOT/manual")


def test_destroy_origin_after_activating_checkpoint(engine, zfs):
    """apt-clone Example 3: checkpoint, activate it, reboot, destroy the old BE."""
    engine.plan_create("new").execute()
    engine.plan_activate("new").execute()
    zfs.reboot("rpool")
    engine = Engine(zfs, clock=engine.clock)
    assert {be.name: be.flags for be in engine.list()} == {"debian": "", "new": "AC"}
    engine.plan_destroy("debian").execute()
    assert datasets(zfs, "rpool/ROOT") == ["rpool/ROOT", "rpool/ROOT/new"]


def test_destroy_parent_of_two_clones_promotes_newest_dependent(engine, zfs, clock):
    """bectl: two BEs cloned from one parent, then destroy the parent."""
    engine.plan_create("a", source="debian").execute()
    clock.tick()
    engine.plan_create("b", source="debian").execute()
    engine.plan_create("keep").execute()  # running BE must stay: make `a` the parent instead
    engine.plan_create("c1", source="a").execute()
    clock.tick()
    zfs.write("rpool/ROOT/a", 1 * MiB)
    engine.plan_create("c2", source="a").execute()
    plan = engine.plan_destroy("a")
    assert plan.steps[0].kind == Kind.SET_PROPS  # first: a crash leaves residue that says so
    assert plan.steps[1].text == "mark a destroying"
    assert plan.steps[2].text.startswith("promote rpool/ROOT/c2")
    plan.execute()
    assert not zfs.exists("rpool/ROOT/a")
    assert props(zfs, "rpool/ROOT/c1", "origin")["origin"] == "rpool/ROOT/c2@c1"
    assert props(zfs, "rpool/ROOT/c2", "origin")["origin"] == "rpool/ROOT/debian@a"
    # c2's own origin snapshot went (nothing needs it); c1's stays (c1 needs it)
    assert not zfs.exists("rpool/ROOT/c2@c2") and zfs.exists("rpool/ROOT/c2@c1")
    assert set(names(engine)) == {"debian", "b", "keep", "c1", "c2"}


def test_destroy_parent_with_clones_of_same_snapshot(engine, zfs):
    engine.plan_create("a").execute()
    zfs.snapshot(["rpool/ROOT/a@shared"], {PROP_SNAPSHOT: "yes"})
    for name in ("x", "y"):
        zfs.clone("rpool/ROOT/a@shared", f"rpool/ROOT/{name}", {"canmount": "noauto"})
    engine.plan_destroy("a").execute()
    origins = {n: props(zfs, f"rpool/ROOT/{n}", "origin").get("origin") for n in ("x", "y")}
    heir = next(n for n, o in origins.items() if o and o.startswith("rpool/ROOT/debian@"))
    other = ({"x", "y"} - {heir}).pop()
    assert origins[other] == f"rpool/ROOT/{heir}@shared"
    assert zfs.exists(f"rpool/ROOT/{heir}@shared")  # still the other's origin


def test_destroy_refuses_held_snapshot_without_change(engine, zfs):
    engine.plan_create("ck").execute()
    zfs.hold("rpool/ROOT/debian@ck", "backup")
    before = datasets(zfs)
    with pytest.raises(Refused, match="holds: backup"):
        engine.plan_destroy("ck")
    assert datasets(zfs) == before


def test_destroy_deep_be(clock):
    zfs = FakeZfs(clock=clock, strict=True)
    build_system(zfs, deep=True)
    engine = Engine(zfs, clock=clock)
    engine.plan_create("ck").execute()
    engine.plan_destroy("ck").execute()
    assert datasets(zfs, "rpool/ROOT") == ["rpool/ROOT", "rpool/ROOT/debian", "rpool/ROOT/debian/var"]


def test_destroy_unknown_and_bad_names(engine):
    with pytest.raises(BeNotFound):
        engine.plan_destroy("ghost")
    with pytest.raises(InvalidBeName):
        engine.plan_destroy("../home")


def test_destroy_of_mounted_be_unmounts_first(engine, zfs):
    engine.plan_create("ck").execute()
    engine.mount("ck")
    engine.plan_destroy("ck").execute()
    assert not zfs.exists("rpool/ROOT/ck")


# ---------------------------------------------------------------- rename, describe, mount


def test_rename_moves_bootfs_and_refuses_running(engine, zfs, boot):
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()
    engine.plan_rename("ck", "good").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/good"
    assert boot.calls[-1] == ("post_rename", "ck", "good")
    with pytest.raises(Refused, match="running"):
        engine.plan_rename("debian", "old")
    with pytest.raises(BeExists):
        engine.plan_rename("good", "debian")


def test_describe_sets_title(engine, zfs):
    engine.plan_describe("debian", "the original").execute()
    assert engine.get("debian").title == "the original"


def test_mount_and_unmount_deep_be(clock, tmp_path):
    zfs = FakeZfs(clock=clock, strict=True)
    build_system(zfs, deep=True)
    engine = Engine(zfs, clock=clock, mount_base=str(tmp_path))
    engine.plan_create("ck").execute()
    path = engine.mount("ck")
    assert path == str(tmp_path / "ck")
    assert zfs.mounted_at(path) == "rpool/ROOT/ck"
    assert zfs.mounted_at(path + "/var") == "rpool/ROOT/ck/var"
    assert engine.get("ck").mounted
    with pytest.raises(Refused, match="already mounted"):
        engine.mount("ck")
    engine.unmount("ck")
    assert zfs.mounted_at(path) is None and not engine.get("ck").mounted
    with pytest.raises(Refused, match="running"):
        engine.mount("debian")
    # `bootenv mount` stays in the admin's namespace: their shell must see it
    assert zfs.private_mount_calls == 0
    engine.mount("ck", private=True)
    assert zfs.private_mount_calls == 1 and engine.get("ck").mounted


def test_a_bootloader_that_looks_inside_mounts_privately(clock, tmp_path):
    zfs = FakeZfs(clock=clock, strict=True)
    build_system(zfs)
    seen = []

    class Looking(Bootloader):
        needs_mount = True

        def mid_activate(self, be, path):
            seen.append((path, zfs.private_mount_calls, zfs.mounted_at(path)))

    engine = Engine(zfs, Looking(), clock=clock, mount_base=str(tmp_path))
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()
    assert seen == [(str(tmp_path / "ck"), 1, "rpool/ROOT/ck")]
    assert not engine.get("ck").mounted


def test_set_metadata_only_in_our_namespace(engine, zfs):
    engine.plan_create("ck", state="pending").execute()
    assert engine.get("ck").state == "pending"
    engine.set_metadata("ck", {PROP_STATE: "failed"})
    assert engine.get("ck").state == "failed"
    with pytest.raises(UsageError):
        engine.set_metadata("ck", {"canmount": "on"})
    with pytest.raises(BeNotFound):
        engine.set_metadata("ghost", {PROP_STATE: "failed"})


@pytest.mark.parametrize("title", ["two\nlines", "tab\there", "bell\a", "x" * 2000])
def test_titles_that_break_one_line_outputs_are_refused(engine, zfs, title):
    before = datasets(zfs)
    with pytest.raises(UsageError):
        engine.plan_create("ck", title=title)
    with pytest.raises(UsageError):
        engine.plan_describe("debian", title)
    assert datasets(zfs) == before


def test_every_step_the_engine_and_trial_plan_has_a_kind(engine, zfs):
    from bootenv.plan import Kind
    from bootenv.trial import Trial

    engine.plan_create("ck").execute()
    engine.plan_create("other").execute()
    plans = [
        engine.plan_create("x"),
        engine.plan_activate("ck"),
        engine.plan_activate("ck", once=True),
        Trial(engine).plan_activate_once("ck"),
        engine.plan_destroy("other"),
        engine.plan_rename("other", "renamed"),
        engine.plan_describe("ck", "a title"),
    ]
    for plan in plans:
        assert plan.steps
        assert [s.text for s in plan.steps if s.kind == Kind.OTHER] == [], plan.summary


def test_trial_finds_the_switch_by_kind_not_by_text(engine, zfs):
    from bootenv.plan import Kind
    from bootenv.trial import Trial

    engine.plan_create("ck").execute()
    plan = Trial(engine).plan_activate_once("ck")
    kinds = [s.kind for s in plan.steps]
    record = kinds.index(Kind.TRIAL)
    assert kinds[record + 1] in (Kind.SWITCH, Kind.SET_BOOTFS)


def test_create_lists_the_be_root_once_and_then_only_the_new_be(engine, zfs, monkeypatch):
    """A checkpoint's cost does not grow with the BEs kept: one listing of
    the BE root to plan it, then the new BE's own tree, never another
    listing of them all."""
    for i in range(5):
        engine.plan_create(f"old{i}").execute()
    listed = []
    real = zfs.list
    monkeypatch.setattr(zfs, "list", lambda root, **kw: listed.append(root) or real(root, **kw))
    be = engine.plan_create("new").execute()
    assert be.name == "new" and not be.running and be.origin_be == "debian"
    assert listed == ["rpool/ROOT", "rpool/ROOT/new"]


def test_checkpoints_of_an_encrypted_root_share_its_key_and_list_says_so(clock, boot, tmp_path):
    """The OpenZFS guide's encrypted rpool: a checkpoint is a clone under
    the same encryption root (no key of its own), and list says so."""
    import json

    from bootenv.cli import context, output
    from bootenv.zfs.fake import FakeZfs
    from bootenv.zfs.fake.build import root_on_zfs

    zfs = root_on_zfs(FakeZfs(clock=clock, strict=True), deep=["var"], shared=["home"], encrypted=True)
    engine = Engine(zfs, boot, clock=clock, mount_base=str(tmp_path / "mnt"))
    engine.plan_create("ck").execute()
    bes = {be.name: be for be in engine.list()}
    assert bes["ck"].encryption_root == bes["debian"].encryption_root == "rpool" and bes["ck"].encrypted
    assert zfs.get_props("rpool/ROOT/ck/var", ["encryptionroot"]) == {"encryptionroot": "rpool"}
    rows = json.loads(output.to_json(bes.values()))
    assert {(r["name"], r["encrypted"], r["encryption_root"]) for r in rows} == {("debian", True, "rpool"), ("ck", True, "rpool")}
    text = context.format_bes(list(bes.values()))
    assert text.splitlines()[-1].startswith("encrypted: every BE is encrypted (encryption root rpool)")
    assert context.format_bes(list(bes.values()), scripted=True, columns="name,encryption") == "debian\trpool\nck\trpool"
    plain = root_on_zfs(FakeZfs(clock=clock, strict=True))
    assert not Engine(plain, boot, clock=clock).list()[0].encrypted
    assert output.encryption_note(Engine(plain, boot, clock=clock).list()) is None
