"""/boot on a second pool (issue 14), on the fake: the OpenZFS guides'
`bpool/BOOT/debian` beside an encrypted `rpool/ROOT/debian`, and Ubuntu's
installer layout with `bpool/BOOT/ubuntu_ab12cd`. A BE is the pair: create
snapshots and clones both halves (one atomic snapshot per pool), activate
makes the BE's boot half the one a boot mounts (canmount), destroy, rename
and mount treat the pair as one, list shows one row with both halves'
space, and a checkpoint that would fill the boot pool is refused.
"""

from __future__ import annotations

import json

import pytest

from bootenv.engine import Engine
from bootenv.errors import BeExists, Refused
from bootenv.model import PROP_OPERATION, PROP_SNAPSHOT
from bootenv.repair import repair
from bootenv.zfs.base import NoSpace
from bootenv.zfs.fake import MiB, FakeZfs

from .conftest import cli_env, cli_runner
from .test_layouts import UBUNTU, USERDATA, everything, guide_layout, ubuntu_layout

BOOT = "bpool/BOOT"


def add_boot_pool(z: FakeZfs, name: str, *, size_mib: int = 1024, kernels_mib: int = 120) -> None:
    """The guides' bpool (GRUB's feature set is not modelled): BOOT as a
    container, the running BE's boot half mounted at /boot with kernels."""
    z.create_pool("bpool", {"mountpoint": "/boot", "canmount": "off"}, size=size_mib * MiB)
    z.create(BOOT, {"canmount": "off", "mountpoint": "none"})
    z.create(f"{BOOT}/{name}", {"mountpoint": "/boot"})
    z.write(f"{BOOT}/{name}", kernels_mib * MiB)
    z.mount(f"{BOOT}/{name}", "/boot")


@pytest.fixture
def guide(clock, boot, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    guide_layout(z)
    add_boot_pool(z, "debian")
    return z, Engine(z, boot, clock=clock, mount_base=str(tmp_path / "mnt"))


@pytest.fixture
def ubuntu(clock, boot, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    ubuntu_layout(z)
    add_boot_pool(z, "ubuntu_ab12cd")
    # zsys's older state has its boot half too (a clone of its autozsys snapshot)
    z.snapshot([f"{BOOT}/ubuntu_ab12cd@autozsys_q1w2e3"])
    z.clone(f"{BOOT}/ubuntu_ab12cd@autozsys_q1w2e3", f"{BOOT}/ubuntu_zz9988", {"canmount": "noauto", "mountpoint": "/boot"})
    return z, Engine(z, boot, clock=clock, mount_base=str(tmp_path / "mnt"))


def canmounts(z: FakeZfs) -> dict[str, str]:
    return {d.name: d.props["canmount"] for d in z.list(BOOT) if d.name != BOOT}


def test_the_boot_root_is_found_from_what_is_mounted_at_boot(guide, monkeypatch, clock, boot):
    z, engine = guide
    assert engine.boot_root == BOOT and engine.boot_pool == "bpool"
    (be,) = engine.list()
    assert be.boot == (f"{BOOT}/debian",)
    assert be.used == z.list("rpool/ROOT/debian")[0].number("used") + z.list(f"{BOOT}/debian")[0].number("used")
    monkeypatch.setenv("BOOTENV_BOOT_ROOT", "none")
    assert Engine(z, boot, clock=clock).boot_root is None
    monkeypatch.setenv("BOOTENV_BOOT_ROOT", "bpool/BOOT/")
    assert Engine(z, boot, clock=clock).boot_root == BOOT
    # /boot of another name is not this BE's: shared, as before
    monkeypatch.delenv("BOOTENV_BOOT_ROOT")
    z.unmount(f"{BOOT}/debian")
    z.create(f"{BOOT}/other", {"mountpoint": "/boot"})
    z.mount(f"{BOOT}/other", "/boot")
    assert Engine(z, boot, clock=clock).boot_root is None


def test_create_clones_both_halves_one_snapshot_per_pool(guide, monkeypatch):
    z, engine = guide
    calls = []
    real = z.snapshot
    monkeypatch.setattr(z, "snapshot", lambda names, props=None: calls.append(list(names)) or real(names, props))
    be = engine.plan_create("ck").execute()
    assert calls == [["rpool/ROOT/debian@ck", "rpool/ROOT/debian/var@ck", "rpool/ROOT/debian/var/lib@ck"], [f"{BOOT}/debian@ck"]]
    assert be.boot == (f"{BOOT}/ck",) and be.state == "complete"
    got = z.get_props(f"{BOOT}/ck", ["origin", "mountpoint", "canmount", PROP_SNAPSHOT])
    assert got["origin"] == f"{BOOT}/debian@ck" and got["mountpoint"] == "/boot" and got["canmount"] == "noauto"
    assert z.get_props(f"{BOOT}/debian@ck", [PROP_SNAPSHOT])[PROP_SNAPSHOT] == "yes"
    assert z.mounted_at("/boot") == f"{BOOT}/debian"  # nothing mounted over the running /boot
    assert [b.name for b in engine.list()] == ["debian", "ck"]


def test_a_failed_boot_snapshot_undoes_the_root_one(guide, monkeypatch):
    z, engine = guide
    before = everything(z, "rpool"), everything(z, "bpool")
    real, seen = z.snapshot, []

    def snapshot(names, props=None):
        seen.append(names)
        if len(seen) == 2:
            raise NoSpace("out of space in pool bpool", names[0])
        return real(names, props)

    monkeypatch.setattr(z, "snapshot", snapshot)
    with pytest.raises(Exception):
        engine.plan_create("ck").execute()
    monkeypatch.setattr(z, "snapshot", real)
    after = everything(z, "rpool"), everything(z, "bpool")
    assert after == before  # the root pool's snapshots went with the undo
    assert not z.get_props("rpool/ROOT", [PROP_OPERATION])


def test_activate_makes_its_boot_half_the_one_a_boot_mounts(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    assert canmounts(z) == {f"{BOOT}/debian": "on", f"{BOOT}/ck": "noauto"}
    plan = engine.plan_activate("ck")
    assert [s.text for s in plan.steps if s.kind == "boot-mount"] == [
        # the running BE's child made by the installer is `on`: zfs mount -a would mount it over ck's
        "set canmount=noauto on rpool/ROOT/debian/var/lib (not mounted at /var/lib at boot)",
        f"set canmount=noauto on {BOOT}/debian (not mounted at /boot at boot)",
        f"set canmount=on on {BOOT}/ck (mounted at /boot at boot)",
    ]
    plan.execute()
    assert canmounts(z) == {f"{BOOT}/debian": "noauto", f"{BOOT}/ck": "on"}
    assert z.pool_get("rpool", "bootfs") == "rpool/ROOT/ck"
    assert z.get_props(f"{BOOT}/ck", ["origin"]).get("origin") in (None, "", "-")  # promoted, both halves
    assert z.get_props("rpool/ROOT/ck", ["origin"]).get("origin") in (None, "", "-")
    assert z.mounted_at("/boot") == f"{BOOT}/debian"  # the running /boot stays mounted
    # a reboot mounts the canmount=on half; back again
    engine.plan_activate("debian").execute()
    assert canmounts(z) == {f"{BOOT}/debian": "on", f"{BOOT}/ck": "noauto"}


def test_boot_once_is_refused_where_boot_is_paired(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    with pytest.raises(Refused, match="canmount"):
        engine.plan_activate("ck", once=True)


def test_destroy_takes_both_halves_and_their_origins(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    engine.plan_create("ck2", source="ck").execute()
    before_rpool_outside = {k: v for k, v in everything(z, "rpool").items() if not k.startswith("rpool/ROOT")}
    engine.plan_destroy(["ck2", "ck"]).execute()
    assert sorted(d.name for d in z.list("bpool", snapshots=True)) == ["bpool", BOOT, f"{BOOT}/debian"]
    assert [b.name for b in engine.list()] == ["debian"]
    assert {k: v for k, v in everything(z, "rpool").items() if not k.startswith("rpool/ROOT")} == before_rpool_outside


def test_destroying_the_origin_hands_both_halves_histories_on(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()
    z.reboot("rpool")  # the fake mounts the root pool only: /boot moves by hand
    z.unmount(f"{BOOT}/debian")
    z.mount(f"{BOOT}/ck", "/boot")
    engine = Engine(z, engine.bootloader, clock=engine.clock, mount_base=engine.mount_base)
    assert engine.boot_root == BOOT and [b.name for b in engine.list() if b.running] == ["ck"]
    engine.plan_destroy("debian").execute()
    assert sorted(d.name for d in z.list("bpool", snapshots=True)) == ["bpool", BOOT, f"{BOOT}/ck"]


def test_rename_renames_both_and_repair_finishes_a_half_done_one(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    engine.plan_rename("ck", "good").execute()
    assert engine.get("good").boot == (f"{BOOT}/good",) and not z.exists(f"{BOOT}/ck")
    # killed between the two renames: the root pool's is done, the boot pool's not
    plan = engine.plan_rename("good", "best")
    steps = [s.text for s in plan.steps]
    assert steps[:3] == [
        "record 'rename good best' on rpool/ROOT (until done)",
        "rename rpool/ROOT/good to rpool/ROOT/best",
        f"rename {BOOT}/good to {BOOT}/best",
    ]
    for step in plan.steps[:2]:
        step.action()
    assert engine.get("best").boot == () and z.exists(f"{BOOT}/good")
    report = repair(engine)
    assert f"{BOOT}/good: the boot half of best, whose rename from good was interrupted" in report.found
    report.plan.execute()
    assert engine.get("best").boot == (f"{BOOT}/best",)
    assert repair(engine).plan.steps == []


def test_rename_refuses_a_boot_half_of_that_name(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    z.create(f"{BOOT}/taken", {"mountpoint": "/boot", "canmount": "noauto"})
    with pytest.raises(BeExists, match=f"{BOOT}/taken"):
        engine.plan_rename("ck", "taken")
    with pytest.raises(BeExists, match=f"{BOOT}/taken"):
        engine.plan_create("taken")


def test_mount_puts_the_boot_half_at_boot(guide, tmp_path):
    z, engine = guide
    engine.plan_create("ck").execute()
    path = engine.mount("ck")
    assert z.mounted_at(path + "/boot") == f"{BOOT}/ck"
    assert z.mounted_at(path + "/var/lib") == "rpool/ROOT/ck/var/lib"
    engine.unmount("ck")
    assert z.mounted_at(path + "/boot") is None and z.mounted_at(path) is None


def test_a_checkpoint_that_would_fill_the_boot_pool_is_refused(clock, boot, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    guide_layout(z)
    add_boot_pool(z, "debian", size_mib=520, kernels_mib=120)  # 392M available (slop 128M)
    engine = Engine(z, boot, clock=clock, mount_base=str(tmp_path / "mnt"))
    engine.plan_create("ck1").execute()
    z.delete(f"{BOOT}/debian", 120 * MiB)  # a kernel upgrade: the old kernels stay in ck1's snapshot
    z.write(f"{BOOT}/debian", 120 * MiB)
    engine.plan_create("ck2").execute()
    z.delete(f"{BOOT}/debian", 120 * MiB)
    z.write(f"{BOOT}/debian", 120 * MiB)
    before = everything(z, "rpool"), everything(z, "bpool")
    with pytest.raises(Refused, match=r"boot pool bpool has 32M available, less than the 120M /boot holds .*bootenv prune"):
        engine.plan_create("ck3")
    assert (everything(z, "rpool"), everything(z, "bpool")) == before
    with pytest.raises(NoSpace):  # what the refusal spares: the next kernel upgrade would not fit
        z.write(f"{BOOT}/debian", 120 * MiB)


def test_repair_gives_boot_at_boot_to_the_next_boot_alone(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    plan = engine.plan_activate("ck")
    # killed after the old half became noauto, before the new one became on
    for step in plan.steps:
        step.action()
        if step.kind == "boot-mount" and f"{BOOT}/debian " in step.text:
            break
    assert canmounts(z) == {f"{BOOT}/debian": "noauto", f"{BOOT}/ck": "noauto"}
    report = repair(engine)
    assert report.found == ["what a boot mounts by itself (canmount=on) is not debian's alone"]
    report.plan.execute()
    assert canmounts(z) == {f"{BOOT}/debian": "on", f"{BOOT}/ck": "noauto"}


def test_ubuntu_layout_pairs_bpool_and_leaves_userdata_and_zsys_states(ubuntu):
    z, engine = ubuntu
    userdata = everything(z, "rpool/USERDATA")
    zsys_boot = {k: v for k, v in everything(z, "bpool").items() if "zz9988" in k or "autozsys" in k}
    bes = {be.name: be for be in engine.list()}
    assert bes["ubuntu_ab12cd"].boot == (f"{BOOT}/ubuntu_ab12cd",)
    assert bes["ubuntu_zz9988"].boot == (f"{BOOT}/ubuntu_zz9988",)
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()
    assert canmounts(z) == {f"{BOOT}/ubuntu_ab12cd": "noauto", f"{BOOT}/ubuntu_zz9988": "noauto", f"{BOOT}/ck": "on"}
    engine.plan_activate("ubuntu_ab12cd").execute()
    engine.plan_destroy("ck").execute()
    assert everything(z, "rpool/USERDATA") == userdata
    after = everything(z, "bpool")
    # zsys's boot half and its autozsys snapshot are there (activate's promote moved the snapshot, as ZFS does)
    assert f"{BOOT}/ubuntu_zz9988" in after and any("@autozsys_q1w2e3" in k for k in after)
    assert after[f"{BOOT}/ubuntu_zz9988"][1:3] == zsys_boot[f"{BOOT}/ubuntu_zz9988"][1:3]
    assert not z.exists(f"{BOOT}/ck") and not z.exists("rpool/ROOT/ck")
    # zsys's own root and children were `on` (Ubuntu's installer): activating ck made them
    # noauto (zfs mount -a would mount them over ck's), and they stay so: the initramfs
    # mounts the booted root and its children, noauto or not
    assert z.get_props(UBUNTU, ["canmount"])["canmount"] == "noauto"
    assert z.get_props(f"{UBUNTU}/var/lib", ["canmount"])["canmount"] == "noauto"
    assert z.get_props(f"{UBUNTU}/usr", ["canmount"])["canmount"] == "off"  # containers stay off
    assert all(z.exists(ds) for ds in USERDATA)


def test_list_shows_one_row_per_be_with_the_boot_pool(guide, tmp_path):
    z, engine = guide
    engine.plan_create("ck").execute()
    state = tmp_path / "pool.json"
    z.save(state)
    env = cli_env(state, tmp_path)
    from bootenv import cli

    runner = cli_runner()
    out = runner.invoke(cli.app, ["list"], env=env)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert sum(" debian " in f" {line} " for line in lines) == 1 and sum(" ck " in f" {line} " for line in lines) == 1
    assert any(line.startswith("boot pool: ") and "available of 1G" in line and f"{BOOT}/NAME" in line for line in lines), out.output
    data = json.loads(runner.invoke(cli.app, ["list", "--json"], env=env).output)
    ck = next(b for b in data if b["name"] == "ck")
    assert ck["boot_dataset"] == f"{BOOT}/ck"
    assert ck["datasets"] == ["rpool/ROOT/ck", "rpool/ROOT/ck/var", "rpool/ROOT/ck/var/lib", f"{BOOT}/ck"]


def test_activate_points_the_bes_mount_generator_cache_at_its_boot_half(guide, tmp_path):
    """The checkpoint's /etc/zfs/zfs-list.cache/bpool (zed's, copied when it
    was taken) names debian's half on and not its own: activate rewrites
    it as zed would after the canmount changes, so the generator mounts
    the BE's own /boot when it boots."""
    from bootenv.boot.listcache import cache_path

    z, engine = guide
    engine.plan_create("ck").execute()
    line = "\t".join(["{}", "/boot", "{}", "on", "on", "on", "on", "off", "on", "off", "-", "none"]) + "\n"
    path = cache_path(str(tmp_path / "mnt" / "ck"), "bpool")
    (tmp_path / "mnt" / "ck" / "etc/zfs/zfs-list.cache").mkdir(parents=True)
    with open(path, "w") as f:
        f.write(line.format("bpool/BOOT/debian", "on"))
    engine.plan_activate("ck").execute()
    got = {l.split("\t")[0]: l.split("\t")[2] for l in open(path).read().splitlines()}
    assert got == {f"{BOOT}/debian": "noauto", f"{BOOT}/ck": "on"}
    assert z.mounted_at(str(tmp_path / "mnt" / "ck")) is None  # looked at, unmounted again


def test_what_destroying_a_paired_be_frees_counts_both_halves(guide):
    z, engine = guide
    engine.plan_create("ck").execute()
    z.write("rpool/ROOT/ck", 8 * MiB)
    z.write(f"{BOOT}/ck", 16 * MiB)
    alone = engine.reclaim_alone()["ck"]
    assert alone == engine.get("ck").used and alone >= 24 * MiB
    per, total = engine.reclaim(["ck"])
    assert per["ck"] == total == z.destroy_preview(["rpool/ROOT/ck", f"{BOOT}/ck", "rpool/ROOT/debian@ck",
                                                     "rpool/ROOT/debian/var@ck", "rpool/ROOT/debian/var/lib@ck",
                                                     f"{BOOT}/debian@ck", "rpool/ROOT/ck/var", "rpool/ROOT/ck/var/lib"])
