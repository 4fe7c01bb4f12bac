"""The root pools real machines have, on the fake (issue 14): the OpenZFS
guide's encrypted rpool with a deep BE and shared datasets beside it, and
Ubuntu's installer (zsys) layout with USERDATA and zsys's own states.

For each: a checkpoint clones exactly the BE's datasets (containers stay
`canmount=off`, the rest `noauto`, every mountpoint as the source's),
activate, destroy and prune touch nothing outside the BE root, and nothing
bootenv did not make (zsys's states, its snapshots, its properties) is
destroyed or changed unless named. /boot on a second pool (bpool) is not
paired with the BE yet: these layouts are built without one.
"""

from __future__ import annotations

import json

import pytest

from bootenv.engine import Engine
from bootenv.errors import Refused
from bootenv.zfs.fake import MiB, FakeZfs
from bootenv.zfs.fake.build import root_on_zfs

from .conftest import cli_env, cli_runner

ZSYS = "com.ubuntu.zsys:"
UBUNTU = "rpool/ROOT/ubuntu_ab12cd"
# Ubuntu 22.04's installer: the BE's children, containers (canmount=off) first.
UBUNTU_CHILDREN = [("usr", "off"), ("usr/local", "on"), ("var", "off"), ("var/lib", "on"), ("var/lib/apt", "on"),
                   ("var/lib/dpkg", "on"), ("var/log", "on"), ("var/spool", "on"), ("srv", "on")]
USERDATA = ["rpool/USERDATA/root_xy12", "rpool/USERDATA/alice_xy12"]


def ubuntu_layout(z: FakeZfs) -> None:
    """rpool/ROOT/ubuntu_ab12cd with its children, rpool/USERDATA tied to
    it by com.ubuntu.zsys:bootfs-datasets, a zsys state (autozsys
    snapshots of the root tree and of USERDATA) and an older zsys-made
    root (a clone of one of them), as zsys leaves them."""
    z.create_pool("rpool", {"mountpoint": "/", "canmount": "off"})
    z.create("rpool/ROOT", {"canmount": "off", "mountpoint": "none"})
    z.create(UBUNTU, {"mountpoint": "/", "canmount": "on", ZSYS + "bootfs": "yes",
                      ZSYS + "last-used": "1795400000", ZSYS + "last-booted-kernel": "vmlinuz-6.8.0-48-generic"})
    z.write(UBUNTU, 32 * MiB)
    z.mount(UBUNTU, "/")
    for child, canmount in UBUNTU_CHILDREN:
        z.create(f"{UBUNTU}/{child}", {"canmount": canmount})
        if canmount == "on":
            z.write(f"{UBUNTU}/{child}", MiB)
            z.mount(f"{UBUNTU}/{child}", f"/{child}")
    z.create("rpool/USERDATA", {"canmount": "off", "mountpoint": "/"})
    for ds, mp in zip(USERDATA, ("/root", "/home/alice")):
        z.create(ds, {"mountpoint": mp, "canmount": "on", ZSYS + "bootfs-datasets": UBUNTU})
        z.write(ds, 2 * MiB)
        z.mount(ds, mp)
    tree = [UBUNTU, *[f"{UBUNTU}/{c}" for c, _ in UBUNTU_CHILDREN]]
    z.snapshot([f"{ds}@autozsys_q1w2e3" for ds in tree + USERDATA])
    z.clone(f"{UBUNTU}@autozsys_q1w2e3", "rpool/ROOT/ubuntu_zz9988", {"canmount": "noauto", "mountpoint": "/"})
    z.pool_set("rpool", "bootfs", UBUNTU)


def guide_layout(z: FakeZfs) -> None:
    """The OpenZFS guide's rpool: encrypted at its top, rpool/ROOT/debian
    with /var/lib inside the BE, and shared datasets outside the BE root
    (/home, /srv, /var/log, /var/spool under a canmount=off rpool/var)."""
    root_on_zfs(z, deep=["var/lib"], shared=["home", "srv"], data_mib=32, encrypted=True)
    z.create("rpool/var", {"canmount": "off"})
    for name in ("log", "spool"):
        z.create(f"rpool/var/{name}")
        z.mount(f"rpool/var/{name}", f"/var/{name}")


def everything(z: FakeZfs, root: str) -> dict[str, tuple]:
    """Every dataset under `root` with what an admin would notice changed:
    its origin, mountpoint, canmount, zsys properties and data written."""
    rows = z.list(root, snapshots=True, user_props=[ZSYS + "bootfs", ZSYS + "bootfs-datasets", ZSYS + "last-used"])
    return {d.name: (d.origin, d.props.get("mountpoint"), d.props.get("canmount"), d.createtxg,
                     tuple(sorted((k, v) for k, v in d.props.items() if k.startswith(ZSYS))))
            for d in rows}


@pytest.fixture
def ubuntu(clock, boot, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    ubuntu_layout(z)
    return z, Engine(z, boot, clock=clock, mount_base=str(tmp_path / "mnt"))


@pytest.fixture
def guide(clock, boot, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    guide_layout(z)
    return z, Engine(z, boot, clock=clock, mount_base=str(tmp_path / "mnt"))


def test_ubuntu_bes_are_the_roots_with_their_children(ubuntu):
    z, engine = ubuntu
    bes = {be.name: be for be in engine.list()}
    assert set(bes) == {"ubuntu_ab12cd", "ubuntu_zz9988"}
    assert bes["ubuntu_ab12cd"].running and bes["ubuntu_ab12cd"].active
    assert list(bes["ubuntu_ab12cd"].children) == [f"{UBUNTU}/{c}" for c, _ in sorted(UBUNTU_CHILDREN, key=lambda c: (c[0].count("/"), c[0]))]
    assert not bes["ubuntu_zz9988"].kind  # zsys made it, not bootenv


def test_ubuntu_checkpoint_clones_the_tree_and_leaves_the_rest(ubuntu):
    z, engine = ubuntu
    outside = {k: v for k, v in everything(z, "rpool").items() if not k.startswith(UBUNTU + "@") and not k.startswith(UBUNTU + "/")}
    engine.plan_create("ck").execute()
    for child, canmount in UBUNTU_CHILDREN:
        got = z.get_props(f"rpool/ROOT/ck/{child}", ["mountpoint", "canmount"])
        assert got == {"mountpoint": f"/{child}", "canmount": "off" if canmount == "off" else "noauto"}, child
    after = everything(z, "rpool")
    assert {k: after[k] for k in outside} == outside  # USERDATA, zsys's root and states: as they were
    assert not [k for k in after if k.startswith("rpool/USERDATA") and k not in outside]


def test_ubuntu_activate_destroy_prune_keep_zsys_states(ubuntu):
    z, engine = ubuntu
    userdata = {k: v for k, v in everything(z, "rpool/USERDATA").items()}
    autozsys = {k.split("@")[1] for k in everything(z, "rpool") if "@autozsys_" in k}
    engine.plan_create("ck").execute()
    engine.plan_activate("ck").execute()
    # The promote moves zsys's older snapshots to ck (ZFS's promote); none is lost.
    snaps = [k for k in everything(z, "rpool/ROOT") if "@autozsys_" in k]
    assert len(snaps) == 1 + len(UBUNTU_CHILDREN) and {s.split("@")[1] for s in snaps} == autozsys
    assert z.get_props(UBUNTU, [ZSYS + "bootfs", ZSYS + "last-used"]) == {ZSYS + "bootfs": "yes", ZSYS + "last-used": "1795400000"}
    engine.plan_activate("ubuntu_ab12cd").execute()
    engine.plan_destroy("ck").execute()
    for name in ("h1", "h2"):
        engine.plan_create(name, kind="hook").execute()
    # prune with nothing kept: bootenv's own automatic BEs go; zsys's roots stay
    plan = engine.plan_prune(engine.policy({"keep_auto": "0", "keep_min": "0", "keep_age": "0"}))
    assert plan.result.destroyed == ["h2", "h1"] or sorted(plan.result.destroyed) == ["h1", "h2"]
    plan.execute()
    assert {be.name for be in engine.list()} == {"ubuntu_ab12cd", "ubuntu_zz9988"}
    assert {k.split("@")[1] for k in everything(z, "rpool") if "@autozsys_" in k} == autozsys
    assert everything(z, "rpool/USERDATA") == userdata


def test_ubuntu_repair_finds_no_residue_in_zsys_states(ubuntu, env_for):
    z, engine = ubuntu
    env = env_for(z)
    found = json.loads(cli_runner().invoke(_app(), ["repair", "-n", "--json"], env=env).stdout)
    assert found["found"] == [] and found["actions"] == []


def test_a_zsys_root_goes_only_when_named_and_confirmed(ubuntu, env_for):
    z, engine = ubuntu
    env = env_for(z)
    runner = cli_runner()
    no = runner.invoke(_app(), ["destroy", "ubuntu_zz9988"], env=env)  # no terminal, no -y: asks, cannot
    assert no.exit_code == 10 and "keeping rpool/ROOT/ubuntu_ab12cd@autozsys_q1w2e3: bootenv did not take it" in no.output
    assert FakeZfs.load(env["BOOTENV_ZFS"].split(":", 1)[1]).exists("rpool/ROOT/ubuntu_zz9988")
    yes = runner.invoke(_app(), ["destroy", "-y", "ubuntu_zz9988"], env=env)
    assert yes.exit_code == 0, yes.output
    z2 = FakeZfs.load(env["BOOTENV_ZFS"].split(":", 1)[1])
    assert not z2.exists("rpool/ROOT/ubuntu_zz9988")
    assert z2.exists(f"{UBUNTU}@autozsys_q1w2e3")  # its origin: zsys's state, not bootenv's to take


def test_guide_checkpoint_is_the_be_tree_under_the_same_encryption_root(guide):
    z, engine = guide
    shared = {k: v for k, v in everything(z, "rpool").items() if not k.startswith("rpool/ROOT/")}
    plan = engine.plan_create("ck")
    plan.execute()
    assert sorted(d.name for d in z.list("rpool/ROOT/ck")) == ["rpool/ROOT/ck", "rpool/ROOT/ck/var", "rpool/ROOT/ck/var/lib"]
    assert z.get_props("rpool/ROOT/ck/var", ["canmount"]) == {"canmount": "off"}  # the container of /var/lib
    assert z.get_props("rpool/ROOT/ck/var/lib", ["mountpoint", "canmount"]) == {"mountpoint": "/var/lib", "canmount": "noauto"}
    ck = engine.get("ck")
    assert ck.encrypted and ck.encryption_root == "rpool"
    assert {k: v for k, v in everything(z, "rpool").items() if not k.startswith("rpool/ROOT/")} == shared
    engine.plan_activate("ck").execute()
    engine.plan_activate("debian").execute()
    engine.plan_destroy("ck").execute()
    assert {k: v for k, v in everything(z, "rpool").items() if not k.startswith("rpool/ROOT/")} == shared


def test_list_json_names_each_bes_datasets(guide, env_for):
    z, _ = guide
    env = env_for(z)
    runner = cli_runner()
    assert runner.invoke(_app(), ["create", "ck"], env=env).exit_code == 0
    rows = {r["name"]: r for r in json.loads(runner.invoke(_app(), ["list", "--json"], env=env).stdout)}
    assert rows["ck"]["datasets"] == ["rpool/ROOT/ck", "rpool/ROOT/ck/var", "rpool/ROOT/ck/var/lib"]
    assert rows["debian"]["encrypted"] is True and rows["ck"]["encryption_root"] == "rpool"


def test_activate_refuses_nothing_on_these_layouts_for_a_whole_be(ubuntu):
    z, engine = ubuntu
    engine.plan_create("ck").execute()
    z.destroy("rpool/ROOT/ck/var/lib/dpkg")  # not whole any more: a child is missing
    with pytest.raises(Refused):
        engine.plan_activate("ck")


def _app():
    from bootenv import cli

    return cli.app


@pytest.fixture
def env_for(tmp_path):
    """The CLI's environment on a saved copy of a fake (its state file)."""
    def make(z: FakeZfs) -> dict:
        state = tmp_path / "layout.json"
        z.save(state)
        return cli_env(state, tmp_path, health=True)
    return make
