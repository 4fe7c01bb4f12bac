"""LzcZfs on the host: the libzfs_core exception table and calls, against a
stand-in module (fake_lzc.py) and the recording fake `zfs`."""

from __future__ import annotations

import errno

import pytest

from bootenv.zfs.base import (
    CrossPool,
    DatasetBusy,
    DatasetExists,
    DatasetNotFound,
    HasDependents,
    InvalidName,
    InvalidProperty,
    PermissionDenied,
    SnapshotHeld,
    ZfsError,
)
from bootenv.zfs.cli import ZfsCommands
from bootenv.run import Runner
from .fake_commands import FakeCommands, cmds, row, zfs  # noqa: F401 (fixtures)
from .fake_lzc import fake_lzc_module, lzc  # noqa: F401 (fixtures)


def test_lzc_translate_table():
    from bootenv.zfs.lzc import translate

    exc = fake_lzc_module().exceptions
    cases = [
        (exc.SnapshotExists(b"p/a@s"), DatasetExists),
        (exc.FilesystemNotFound(b"p/a"), DatasetNotFound),
        (exc.SnapshotIsCloned(b"p/a@s"), HasDependents),
        (exc.SnapshotIsHeld(b"p/a@s"), SnapshotHeld),
        (exc.SnapshotNameInvalid(b"p/a@!"), InvalidName),
        (exc.PoolsDiffer(b"q/b"), CrossPool),
        (exc.SnapshotFailure([exc.SnapshotExists(b"p/a/var@s")], 0), DatasetExists),
        (exc.ZFSGenericError(errno.EPERM, b"p/a", "nope"), PermissionDenied),
        (exc.ZFSGenericError(errno.EIO, b"p/a", "io"), ZfsError),
    ]
    for lzc_exc, cls in cases:
        ours = translate(lzc_exc, "fallback")
        assert type(ours) is cls, (lzc_exc, ours)
        assert ours.errno == lzc_exc.errno
    assert translate(exc.SnapshotFailure([exc.SnapshotExists(b"p/a/var@s")], 0)).name == "p/a/var@s"
    assert translate(exc.SnapshotFailure([exc.SnapshotExists(None)], 0), "p/x@s").name == "p/x@s"


def test_lzc_snapshot_is_one_call_with_bytes(lzc):
    backend, mod = lzc
    backend.snapshot(["p/a@x", "p/a/var@x"], {"org.bootenv:snapshot": "yes"})
    assert mod.calls == [("lzc_snapshot", [b"p/a@x", b"p/a/var@x"], {b"org.bootenv:snapshot": b"yes"})]


def test_lzc_clone_passes_native_props_in_the_same_call(lzc):
    backend, mod = lzc
    backend.clone("p/a@x", "p/b", {"canmount": "noauto", "mountpoint": "/", "org.bootenv:kind": "apt"})
    assert mod.calls == [
        ("lzc_clone", b"p/b", b"p/a@x", {b"canmount": 2, b"mountpoint": b"/", b"org.bootenv:kind": b"apt"})
    ]
    with pytest.raises(InvalidProperty):
        backend.clone("p/a@x", "p/c", {"canmount": "sometimes"})


def test_lzc_destroy_filesystem_with_snapshots_has_dependents(lzc, cmds):
    backend, mod = lzc
    mod.raises["lzc_destroy"] = mod.exceptions.DatasetBusy(b"p/a")
    cmds.reply("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", "p/a", stdout="p/a@s\n")
    with pytest.raises(HasDependents) as info:
        backend.destroy("p/a")
    assert info.value.errno == errno.EBUSY
    assert "has snapshots" in str(info.value)


def test_lzc_destroy_busy_without_snapshots_names_the_namespace_holding_it(cmds, tmp_path):
    """EBUSY on an unmounted filesystem with no snapshots: a copy of its
    mount lives on in a service's namespace (issue 9), never "has children"."""
    from bootenv.zfs.lzc import LzcZfs

    from ..fake_proc import FakeProc

    proc = FakeProc(tmp_path / "proc")
    proc.add(1, "systemd")
    proc.add(318, "systemd-udevd", ns="mnt:[4026532219]", unit="systemd-udevd.service", mounts=[("/run/bootenv/a", "p/a")])
    mod = fake_lzc_module()
    backend = LzcZfs(Runner(), lzc=mod, mountinfo=str(cmds.mountinfo), proc=proc.path)
    mod.raises["lzc_destroy"] = mod.exceptions.DatasetBusy(b"p/a")
    cmds.reply("zfs", "list", stdout="")
    with pytest.raises(DatasetBusy) as info:
        backend.destroy("p/a")
    assert not isinstance(info.value, HasDependents)
    message = str(info.value)
    assert message.startswith("cannot destroy 'p/a': dataset is busy: still mounted in the mount namespace mnt:[4026532219] of systemd-udevd (pid 318")
    assert "systemctl restart systemd-udevd.service" in message


def test_cli_unmount_reports_a_copy_left_in_another_namespace(cmds, tmp_path):
    from ..fake_proc import FakeProc

    proc = FakeProc(tmp_path / "proc")
    proc.add(1, "systemd")
    proc.add(318, "systemd-udevd", ns="mnt:[7]", unit="systemd-udevd.service", mounts=[("/run/bootenv/a", "p/a")])
    cmds.mountinfo.write_text(cmds.mount_line("/run/bootenv/a", "p/a"))
    backend = ZfsCommands(Runner(), mountinfo=str(cmds.mountinfo), proc=proc.path)
    with pytest.raises(DatasetBusy) as info:
        backend.unmount("p/a")
    assert ["umount", "/run/bootenv/a"] in cmds.calls
    assert "still mounted in the mount namespace mnt:[7] of systemd-udevd (pid 318" in str(info.value)


def test_lzc_destroy_mounted_is_busy_without_a_call(lzc, cmds):
    backend, mod = lzc
    cmds.mountinfo.write_text(cmds.mount_line("/mnt/a", "p/a"))
    with pytest.raises(DatasetBusy):
        backend.destroy("p/a")
    assert mod.calls == []


def test_lzc_destroy_snapshot(lzc):
    backend, mod = lzc
    with pytest.raises(DatasetNotFound):  # lzc_destroy_snaps would ignore it
        backend.destroy("p/a@gone")
    mod.existing.add(b"p/a@s")
    mod.raises["lzc_destroy_snaps"] = mod.exceptions.SnapshotDestructionFailure(
        [mod.exceptions.SnapshotIsHeld(b"p/a@s")], 0
    )
    with pytest.raises(SnapshotHeld):
        backend.destroy("p/a@s")
    assert mod.calls[-1] == ("lzc_destroy_snaps", [b"p/a@s"], False)


def test_lzc_holds(lzc):
    backend, mod = lzc
    assert backend.holds("p/a@s") == {"keep"}
    backend.hold("p/a@s", "bootenv")
    assert mod.calls[-1] == ("lzc_hold", {b"p/a@s": b"bootenv"})
    mod.lzc_release = lambda holds: [b"p/a@s#bootenv"]
    with pytest.raises(DatasetNotFound):
        backend.release("p/a@s", "bootenv")


def test_lzc_dry_run(cmds):
    from bootenv.zfs.lzc import LzcZfs

    mod = fake_lzc_module()
    said: list[str] = []
    backend = LzcZfs(Runner(dry_run=True, echo=said.append), lzc=mod, mountinfo=str(cmds.mountinfo))
    backend.snapshot(["p/a@x"])
    backend.destroy("p/a")
    backend.promote("p/b")
    assert [c[0] for c in mod.calls] == []
    assert said == ["would run: lzc_snapshot p/a@x", "would run: lzc_destroy p/a", "would run: lzc_promote p/b"]



def test_lzc_props_through_channel_programs(lzc, cmds):
    backend, mod = lzc
    mod.lzc_channel_program_nosync = lambda pool, prog, params: mod.calls.append(("nosync", pool, params)) or {
        b"org.bootenv:title": b"t",
        b"used": 4096,
    }
    mod.lzc_channel_program = lambda pool, prog, params: mod.calls.append(("sync", pool, params)) or 0
    assert backend.get_props("p/a", ["org.bootenv:title", "used", "org.bootenv:unset"]) == {
        "org.bootenv:title": "t",
        "used": "4096",
    }
    assert mod.calls[-1] == ("nosync", b"p", [b"p/a", b"org.bootenv:title", b"used", b"org.bootenv:unset"])
    backend.set_props("p/a", {"org.bootenv:state": "pending", "org.bootenv:kind": "apt"})
    assert mod.calls[-1] == ("sync", b"p", [b"p/a", b"org.bootenv:state", b"pending", b"org.bootenv:kind", b"apt"])
    assert cmds.calls == []
    # Native properties the programs do not handle go to the zfs command.
    cmds.reply("zfs", "get", stdout="mounted\tno\n")
    assert backend.get_props("p/a", ["mounted"]) == {"mounted": "no"}
    backend.set_props("p/a", {"canmount": "noauto"})
    assert cmds.calls == [
        ["zfs", "get", "-H", "-p", "-o", "property,value", "mounted", "p/a"],
        ["zfs", "set", "canmount=noauto", "p/a"],
    ]


def test_lzc_refused_channel_program_lets_zfs_report(lzc, cmds):
    backend, mod = lzc
    mod.lzc_channel_program = lambda pool, prog, params: 22  # EINVAL from zfs.check.set_prop
    cmds.reply("zfs", "set", stderr="cannot set property for 'p/a': invalid property 'bad:'\n", rc=1)
    with pytest.raises(InvalidProperty):
        backend.set_props("p/a", {"bad:": "x"})
