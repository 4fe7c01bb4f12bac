"""The fake ZFS beyond the contract: names, fault injection, invariants,
running root, persistence, the shell entry point, speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bootenv.zfs.base import (
    DatasetBusy,
    DatasetNotFound,
    InvalidName,
    InvalidProperty,
    NoSpace,
    ZfsBackend,
    ZfsError,
    ZfsUnavailable,
)
from bootenv.zfs.fake import FakeZfs, MiB, open_fake


@pytest.fixture
def z() -> FakeZfs:
    fake = FakeZfs(clock=lambda: 1000, strict=True)
    fake.create_pool("rpool")
    fake.create("rpool/ROOT", {"mountpoint": "none", "canmount": "off"})
    fake.create("rpool/ROOT/debian", {"mountpoint": "/", "canmount": "noauto"})
    fake.write("rpool/ROOT/debian", 8 * MiB)
    fake.mount("rpool/ROOT/debian", "/")
    fake.pool_set("rpool", "bootfs", "rpool/ROOT/debian")
    return fake


def test_is_a_zfs_backend(z):
    assert isinstance(z, ZfsBackend)


@pytest.mark.parametrize(
    "name",
    [
        "rpool/a b@",
        "rpool//a",
        "rpool/a/",
        "/rpool/a",
        "rpool/./a",
        "rpool/a@b@c",
        "rpool/a#b",
        "rpool/a%b",
        "rpool/" + "x" * 250,
        "1pool/a",
        "",
    ],
)
def test_invalid_names(z, name):
    with pytest.raises(InvalidName):
        z.create(name)
    assert not z.exists(name)


def test_valid_odd_names(z):
    for name in ("rpool/a-b_c.d:e", "rpool/with space", "rpool/" + "y" * 248):
        z.create(name)
        assert z.exists(name)
    z.snapshot(["rpool/a-b_c.d:e@x.y:z-1"])


def test_user_prop_names(z):
    with pytest.raises(InvalidProperty):
        z.set_props("rpool/ROOT", {"Org.Upper:x": "1"})
    with pytest.raises(InvalidProperty):
        z.set_props("rpool/ROOT", {"nocolon": "1"})
    with pytest.raises(InvalidProperty):
        z.inherit("rpool/ROOT/debian", "canmount")
    with pytest.raises(InvalidProperty):
        z.set_props("rpool/ROOT/debian", {"mountpoint": "relative/path"})


def test_fail_next_raises_once_and_changes_nothing(z):
    before = z.to_dict()
    err = ZfsError("injected", "rpool/ROOT/debian@s")
    z.fail_next("snapshot", err)
    with pytest.raises(ZfsError) as exc:
        z.snapshot(["rpool/ROOT/debian@s"])
    assert exc.value is err
    assert z.to_dict() == before
    z.snapshot(["rpool/ROOT/debian@s"])
    assert z.exists("rpool/ROOT/debian@s")
    with pytest.raises(ValueError):
        z.fail_next("no_such_op", err)


def test_fail_next_queues(z):
    z.fail_next("exists", DatasetBusy("one"))
    z.fail_next("exists", DatasetBusy("two"))
    for msg in ("one", "two"):
        with pytest.raises(DatasetBusy, match=msg):
            z.exists("rpool")
    assert z.exists("rpool")


def test_running_root_cannot_be_unmounted_or_destroyed(z):
    assert z.mounted_at("/") == "rpool/ROOT/debian"
    with pytest.raises(DatasetBusy):
        z.unmount("rpool/ROOT/debian")
    with pytest.raises(DatasetBusy):
        z.destroy("rpool/ROOT/debian")
    assert z.mounted_at("/") == "rpool/ROOT/debian"


def test_unmount_refused_while_something_is_mounted_below(z):
    z.create("rpool/a", {"canmount": "noauto"})
    z.create("rpool/a/b", {"canmount": "noauto"})
    z.mount("rpool/a", "/mnt/a")
    z.mount("rpool/a/b", "/mnt/a/b")
    with pytest.raises(DatasetBusy):
        z.unmount("rpool/a")
    z.unmount("rpool/a/b")
    z.unmount("rpool/a")


def test_reboot_boots_bootfs(z):
    z.create("rpool/ROOT/debian/var")
    z.mount("rpool/ROOT/debian/var", "/var")
    z.snapshot(["rpool/ROOT/debian@s", "rpool/ROOT/debian/var@s"])
    z.clone("rpool/ROOT/debian@s", "rpool/ROOT/new", {"canmount": "noauto", "mountpoint": "/"})
    z.clone("rpool/ROOT/debian/var@s", "rpool/ROOT/new/var")
    z.pool_set("rpool", "bootfs", "rpool/ROOT/new")
    assert z.reboot("rpool") == "rpool/ROOT/new"
    assert z.mounted_at("/") == "rpool/ROOT/new"
    assert z.mounted_at("/var") == "rpool/ROOT/new/var"
    assert z.get_props("rpool/ROOT/debian", ["mounted"]) == {"mounted": "no"}
    assert z.get_props("rpool/ROOT/debian/var", ["mounted"]) == {"mounted": "no"}


def test_destroying_bootfs_clears_it(z):
    z.create("rpool/ROOT/other")
    z.pool_set("rpool", "bootfs", "rpool/ROOT/other")
    z.destroy("rpool/ROOT/other")
    assert z.pool_get("rpool", "bootfs") is None
    with pytest.raises(InvalidProperty):
        z.pool_set("rpool", "bootfs", "rpool/ROOT/debian@nope")
    with pytest.raises(DatasetNotFound):
        z.pool_set("rpool", "bootfs", "rpool/ROOT/missing")


def test_pool_space_and_no_space():
    """`zpool get free` counts the slop space OpenZFS keeps back (here the
    128 MiB minimum), `available` and writes do not (a 128M bpool, real
    OpenZFS 2.3: free 115M, available 51M)."""
    z = FakeZfs(strict=True)
    z.create_pool("small", size=300 * MiB)
    z.write("small", 100 * MiB)
    assert z.pool_get("small", "allocated") == str(100 * MiB)
    assert z.pool_get("small", "free") == str(200 * MiB)
    assert z.get_props("small", ["available"]) == {"available": str(72 * MiB)}
    with pytest.raises(NoSpace):
        z.write("small", 80 * MiB)
    z.delete("small", 1 * MiB)  # partial: the block is rewritten smaller
    assert z.get_props("small", ["referenced"]) == {"referenced": str(99 * MiB)}
    assert z.pool_get("small", "allocated") == str(99 * MiB)
    z.create_pool("tiny", size=64 * MiB)  # slop is half of a small pool
    assert z.get_props("tiny", ["available"]) == {"available": str(32 * MiB)}


def test_creation_from_clock_order_from_txg():
    t = [500.0]
    z = FakeZfs(clock=lambda: t[0], strict=True)
    z.create_pool("p")
    z.create("p/a")
    t[0] = 100.0  # the clock goes backwards: ordering must not care
    z.create("p/b")
    rows = z.list("p")
    assert [d.name for d in rows] == ["p", "p/a", "p/b"]
    assert [d.props["creation"] for d in rows] == ["500", "500", "100"]


def test_check_invariants_catches_corruption(z):
    z.check_invariants()
    z._fs["rpool/ROOT/debian"].refer += 1
    with pytest.raises(AssertionError, match="referenced"):
        z.check_invariants()


def test_strict_mode_catches_a_raising_call_that_mutates(z):
    def bad(name):
        z._fs["rpool/ROOT"].props["org.x:y"] = "1"
        raise DatasetBusy("oops")

    from bootenv.zfs.fake.ops import op

    wrapped = op(mutating=True)(lambda self, name: bad(name))
    with pytest.raises(AssertionError, match="changed the state"):
        wrapped(z, "rpool")


# ------------------------------------------------------------ persistence


def test_save_load_roundtrip(z, tmp_path):
    z.snapshot(["rpool/ROOT/debian@a"], {"org.bootenv:snapshot": "yes"})
    z.clone("rpool/ROOT/debian@a", "rpool/ROOT/be2", {"org.bootenv:title": "t"})
    z.write("rpool/ROOT/be2", MiB)
    z.hold("rpool/ROOT/debian@a", "keep")
    path = tmp_path / "state.json"
    z.save(path)
    json.loads(path.read_text())
    again = FakeZfs.load(path, strict=True)
    again.check_invariants()
    assert again.to_dict() == z.to_dict()
    assert again.list("rpool", snapshots=True, user_props=["org.bootenv:title"]) == z.list(
        "rpool", snapshots=True, user_props=["org.bootenv:title"]
    )
    assert again.holds("rpool/ROOT/debian@a") == {"keep"}
    assert again.mounted_at("/") == "rpool/ROOT/debian"


def test_open_fake_saves_after_each_mutation(z, tmp_path):
    path = tmp_path / "state.json"
    z.save(path)
    backend = open_fake(path)
    backend.snapshot(["rpool/ROOT/debian@x"])
    assert FakeZfs.load(path).exists("rpool/ROOT/debian@x")
    with pytest.raises(ZfsUnavailable):
        open_fake(tmp_path / "missing.json")


def test_session_saves_on_exit(z, tmp_path):
    path = tmp_path / "state.json"
    z.save(path)
    with FakeZfs.session(path) as s:
        s.create("rpool/new")
    assert FakeZfs.load(path).exists("rpool/new")


# ------------------------------------------------------------ shell


def _shell(*args):
    return subprocess.run(
        [sys.executable, "-m", "bootenv.zfs.fake", *args], capture_output=True, text=True, check=False
    )


def test_shell_init_list_write_reboot(tmp_path):
    state = str(tmp_path / "s.json")
    r = _shell("init", state, "--root", "rpool/ROOT/debian", "--deep", "var", "--shared", "rpool/home", "--data-mib", "8")
    assert r.returncode == 0, r.stderr
    z = FakeZfs.load(state, strict=True)
    z.check_invariants()
    assert z.mounted_at("/") == "rpool/ROOT/debian"
    assert z.mounted_at("/var") == "rpool/ROOT/debian/var"
    assert z.mounted_at("/home") == "rpool/home"
    assert z.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"
    assert z.get_props("rpool/ROOT", ["canmount", "mountpoint"]) == {"canmount": "off", "mountpoint": "none"}
    assert z.get_props("rpool/ROOT/debian", ["referenced"]) == {"referenced": str(8 * MiB)}
    assert _shell("write", state, "rpool/home", "2").returncode == 0
    r = _shell("list", state)
    assert r.returncode == 0 and "rpool/home" in r.stdout and "3.0M" in r.stdout, r.stdout
    z = FakeZfs.load(state)
    z.snapshot(["rpool/ROOT/debian@s", "rpool/ROOT/debian/var@s"])
    z.clone("rpool/ROOT/debian@s", "rpool/ROOT/b", {"mountpoint": "/", "canmount": "noauto"})
    z.clone("rpool/ROOT/debian/var@s", "rpool/ROOT/b/var")
    z.pool_set("rpool", "bootfs", "rpool/ROOT/b")
    z.save(state)
    r = _shell("reboot", state)
    assert r.returncode == 0 and r.stdout.strip() == "rpool/ROOT/b", r.stderr
    z = FakeZfs.load(state, strict=True)
    assert z.mounted_at("/") == "rpool/ROOT/b"
    assert z.mounted_at("/var") == "rpool/ROOT/b/var"
    assert z.mounted_at("/home") == "rpool/home"
    assert _shell("write", state, "rpool/nope", "1").returncode == 1


# ------------------------------------------------------------ speed


def test_list_1000_bes_with_10_snapshots_is_fast():
    z = FakeZfs()
    z.create_pool("rpool")
    z.create("rpool/ROOT")
    z.create("rpool/ROOT/be0")
    z.write("rpool/ROOT/be0", MiB)
    for i in range(1000):
        fs = f"rpool/ROOT/be{i}"
        if i:
            z.clone(f"rpool/ROOT/be{i - 1}@s9", fs, {"org.bootenv:title": f"be {i}"})
        for j in range(10):
            z.write(fs, 4096)
            z.snapshot([f"{fs}@s{j}"])
    best = 1e9
    for _ in range(3):
        z.write("rpool/ROOT/be500", 4096)  # a mutation between listings
        t = time.perf_counter()
        rows = z.list("rpool/ROOT", snapshots=True, user_props=["org.bootenv:title"])
        best = min(best, time.perf_counter() - t)
    assert len(rows) == 1 + 1000 * 11
    assert best < 0.25, f"list of 11,001 datasets took {best * 1000:.0f} ms"


def test_shell_fail_injects_a_fault_the_cli_meets(tmp_path):
    state = str(tmp_path / "s.json")
    assert _shell("init", state).returncode == 0
    assert _shell("fail", state, "list", "PermissionDenied", "permission denied").returncode == 0
    env = {**os.environ, "BOOTENV_ZFS": f"fake:{state}", "BOOTENV_LOCK": str(tmp_path / "lock")}
    env.pop("BOOTENV_BE_ROOT", None)
    cli = subprocess.run([sys.executable, "-m", "bootenv", "list"], capture_output=True, text=True, env=env)
    assert cli.returncode == 5 and cli.stderr == "bootenv: permission denied (try sudo)\n"
    again = subprocess.run([sys.executable, "-m", "bootenv", "list"], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr  # used up
    assert _shell("fail", state, "no_such_op", "PermissionDenied").returncode == 2
    assert _shell("fail", state, "list", "KeyError").returncode != 0
