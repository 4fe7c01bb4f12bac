"""ZfsCommands on the host (no ZFS): argv building, `-H -p` parsing, the
stderr -> ZfsError table, mountinfo and dry-run, against a recording fake
`zfs` (fake_commands.py)."""

from __future__ import annotations


import pytest

from bootenv.zfs.base import (
    LIST_PROPERTIES,
    CrossPool,
    DatasetBusy,
    DatasetExists,
    DatasetNotFound,
    HasDependents,
    InvalidName,
    InvalidProperty,
    NoSpace,
    NotAClone,
    PermissionDenied,
    SnapshotHeld,
    ZfsError,
    ZfsUnavailable,
)
from bootenv.zfs.cli import ZfsCommands, error_from_stderr, parse_list, parse_mountinfo, unescape_mountinfo
from bootenv.run import Runner
from .fake_commands import FakeCommands, cmds, row, zfs  # noqa: F401 (fixtures)
from .fake_lzc import fake_lzc_module, lzc  # noqa: F401 (fixtures)


# ------------------------------------------------------------------- list


def test_list_is_one_scoped_call(cmds, zfs):
    out = row("p/ROOT", createtxg="1", used="100") + "\tt1\n" + row("p/ROOT/a", createtxg="5", origin="-") + "\t-\n"
    cmds.reply("zfs", "list", stdout=out)
    got = zfs.list("p/ROOT", user_props=["org.bootenv:title"])
    assert cmds.calls == [
        [
            "zfs", "list", "-H", "-p", "-r", "-t", "filesystem",
            "-o", ",".join(["name", *LIST_PROPERTIES, "org.bootenv:title"]),
            "-s", "createtxg", "p/ROOT",
        ]
    ]
    assert [d.name for d in got] == ["p/ROOT", "p/ROOT/a"]
    assert got[0].user("org.bootenv:title") == "t1"
    assert got[0].number("used") == 100
    assert "origin" not in got[1].props and got[1].user("org.bootenv:title") is None  # '-' is unset
    assert got[1].createtxg == 5


def test_list_snapshots_only_when_asked(cmds, zfs):
    cmds.reply("zfs", "list", stdout=row("p/ROOT@s", createtxg="3") + "\n")
    got = zfs.list("p/ROOT", snapshots=True)
    assert cmds.calls[0][6] == "filesystem,snapshot"
    assert got[0].is_snapshot and got[0].type == "snapshot"


def test_list_missing_root(cmds, zfs):
    cmds.reply("zfs", "list", stderr="cannot open 'p/nope': dataset does not exist\n", rc=1)
    with pytest.raises(DatasetNotFound):
        zfs.list("p/nope")


def test_parse_keeps_tabs_in_the_last_column():
    cols = ["name", "type", "org.bootenv:title"]
    got, ambiguous = parse_list("p/a\tfilesystem\tone\ttwo\n", cols, "p/a")
    assert got[0].props["org.bootenv:title"] == "one\ttwo" and ambiguous == []


def test_parse_joins_a_value_cut_by_a_newline():
    cols = ["name", "type", "org.bootenv:title", "org.bootenv:kind"]
    out = "p/a\tfilesystem\tline1\nline2\tapt\np/a/b\tfilesystem\t-\t-\n"
    got, ambiguous = parse_list(out, cols, "p/a")
    assert [d.name for d in got] == ["p/a", "p/a/b"]
    assert got[0].props == {"type": "filesystem", "org.bootenv:title": "line1\nline2", "org.bootenv:kind": "apt"}
    assert ambiguous == []


def test_parse_flags_rows_it_cannot_split():
    cols = ["name", "type", "org.bootenv:title", "org.bootenv:kind"]
    got, ambiguous = parse_list("p/a\tfilesystem\tx\ty\tapt\n", cols, "p/a")
    assert ambiguous == ["p/a"]


def test_list_refetches_ambiguous_rows_one_property_at_a_time(cmds, zfs):
    users = ["org.bootenv:title", "org.bootenv:kind"]
    cmds.reply("zfs", "list", stdout=row("p/a", createtxg="1") + "\tx\ty\tapt\n")
    cmds.reply("zfs", "get", "-H", "-p", "-o", "value", "org.bootenv:title", stdout="x\ty\n")
    cmds.reply("zfs", "get", "-H", "-p", "-o", "value", "org.bootenv:kind", stdout="apt\n")
    got = zfs.list("p/a", user_props=users)
    assert got[0].user("org.bootenv:title") == "x\ty"
    assert got[0].user("org.bootenv:kind") == "apt"
    assert got[0].createtxg == 1


# ------------------------------------------------------------ error table

# Messages as OpenZFS 2.x prints them (LC_ALL=C); the betest ones were
# captured from OpenZFS 2.3.2 in the QEMU guest.
STDERR_CASES = [
    ("cannot open 'betest/x': dataset does not exist", DatasetNotFound),
    ("cannot open 'nopool': no such pool", DatasetNotFound),
    ("could not find any snapshots to destroy; check snapshot names.", DatasetNotFound),
    ("cannot release hold from snapshot 'p/a@s': no such tag on this dataset", DatasetNotFound),
    ("cannot create snapshot 'p/a@s': dataset already exists", DatasetExists),
    ("cannot hold snapshot 'p/a@s': tag already exists on this dataset", DatasetExists),
    ("cannot promote 'p/b': conflicting snapshot 's' from parent 'p/a'", DatasetExists),
    (
        "cannot destroy 'p/a': filesystem has children\nuse '-r' to destroy the following datasets:\np/a@s",
        HasDependents,
    ),
    (
        "cannot destroy 'p/a@s': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\np/b",
        HasDependents,
    ),
    ("cannot destroy snapshot p/a@s: snapshot is cloned", HasDependents),
    ("cannot destroy snapshot p/a@s: dataset is busy", SnapshotHeld),
    (
        "cannot destroy snapshot betest/probe/a/b@s: it's being held. Run 'zfs holds -r betest/probe/a/b@s' "
        "to see holders.",
        SnapshotHeld,
    ),
    ("cannot destroy 'betest/probe/a/b': filesystem has children\nuse '-r' to destroy the following "
     "datasets:\nbetest/probe/a/b@s", HasDependents),
    ("cannot create snapshots : this property can not be modified for snapshots", InvalidProperty),
    ("cannot create snapshots : multiple snapshots of same fs not allowed\nno snapshots were created", InvalidName),
    ("cannot rename to 'p/c@s': snapshots must be part of same dataset", InvalidName),
    ("cannot create 'p/no/parent': parent does not exist", DatasetNotFound),
    ("cannot create 'nosuchpool0/x': no such pool 'nosuchpool0'", DatasetNotFound),
    ("cannot open 'p/a': missing '@' delimiter in snapshot name", InvalidName),
    ("cannot set property for 'p/a': 'used' is readonly", InvalidProperty),
    ("cannot set property for 'p': no such pool or dataset", DatasetNotFound),
    ("Cannot get properties of nosuchpool0: no such pool available.", DatasetNotFound),
    ("cannot hold snapshot 'p/a@nope': dataset does not exist", DatasetNotFound),
    ("cannot destroy 'p/a': dataset is busy", DatasetBusy),
    ("cannot unmount '/mnt/x': pool or dataset is busy", DatasetBusy),
    ("umount: /mnt/x: target is busy.", DatasetBusy),
    ("filesystem 'p/a' is already mounted", DatasetBusy),
    ("cannot promote 'p/a': not a cloned filesystem", NotAClone),
    ("cannot create snapshot 'p/a@bad!': invalid character '!' in name", InvalidName),
    ("cannot open 'p//a': empty component in name", InvalidName),
    ("cannot open 'p/a@x@y': multiple '@' and/or '#' delimiters in name", InvalidName),
    ("cannot rename to 'q/a': datasets must be within same pool", CrossPool),
    ("cannot create 'q/b': source and target pools differ", CrossPool),
    ("cannot set property for 'p/a': 'canmount' must be one of 'on | off | noauto'", InvalidProperty),
    ("cannot set property for 'p/a': invalid property 'bogus'", InvalidProperty),
    ("cannot create snapshot 'p/a@s': out of space", NoSpace),
    ("cannot destroy 'p/a': permission denied", PermissionDenied),
]


@pytest.mark.parametrize("stderr,cls", STDERR_CASES)
def test_error_table(stderr, cls):
    err = error_from_stderr(stderr + "\n", "p/a")
    assert type(err) is cls
    assert err.name == "p/a"
    assert "\n" not in str(err)


def test_unknown_message_is_a_plain_zfs_error():
    err = error_from_stderr("something new and strange\n")
    assert type(err) is ZfsError and str(err) == "something new and strange"


def test_missing_zfs_command_is_unavailable(tmp_path):
    backend = ZfsCommands(Runner(), zfs=str(tmp_path / "zfs"))
    with pytest.raises(ZfsUnavailable):
        backend.list("p")


# ------------------------------------------------------------- mutations


def test_atomic_snapshot_is_one_call_with_props(cmds, zfs):
    zfs.snapshot(["p/a@x", "p/a/var@x"], {"org.bootenv:snapshot": "yes"})
    assert cmds.calls == [["zfs", "snapshot", "-o", "org.bootenv:snapshot=yes", "p/a@x", "p/a/var@x"]]


def test_clone_is_not_mounted_and_sets_props_at_creation(cmds, zfs):
    zfs.clone("p/a@x", "p/b", {"canmount": "noauto", "mountpoint": "/"})
    assert cmds.calls == [["zfs", "clone", "-u", "-o", "canmount=noauto", "-o", "mountpoint=/", "p/a@x", "p/b"]]


def test_clone_across_pools_is_refused_without_a_call(cmds, zfs):
    with pytest.raises(CrossPool):
        zfs.clone("p/a@x", "q/b")
    with pytest.raises(CrossPool):
        zfs.rename("p/a", "q/a")
    assert cmds.calls == []


def test_destroy_is_never_recursive(cmds, zfs):
    zfs.destroy("p/a@x")
    zfs.destroy("p/a")
    assert cmds.calls == [["zfs", "destroy", "p/a@x"], ["zfs", "destroy", "p/a"]]


def test_destroy_of_a_mounted_filesystem_is_busy(cmds, zfs):
    cmds.mountinfo.write_text(cmds.mount_line("/mnt/be", "p/a"))
    with pytest.raises(DatasetBusy):
        zfs.destroy("p/a")
    assert cmds.calls == []


def test_destroy_maps_held_snapshot(cmds, zfs):
    cmds.reply("zfs", "destroy", stderr="cannot destroy snapshot p/a@s: dataset is busy\n", rc=1)
    with pytest.raises(SnapshotHeld):
        zfs.destroy("p/a@s")


def test_dry_run_runs_no_mutation(cmds):
    said: list[str] = []
    zfs = ZfsCommands(Runner(dry_run=True, echo=said.append), mountinfo=str(cmds.mountinfo))
    zfs.destroy("p/a")
    zfs.snapshot(["p/a@x"])
    zfs.set_props("p/a", {"org.bootenv:title": "hello world"})
    assert cmds.calls == []
    assert said == [
        "would run: zfs destroy p/a",
        "would run: zfs snapshot p/a@x",
        "would run: zfs set 'org.bootenv:title=hello world' p/a",
    ]


def test_holds_and_props(cmds, zfs):
    cmds.reply("zfs", "holds", stdout="p/a@s\tkeep\tThu Jan  1 00:00 2026\np/a@s\tbootenv\tThu Jan  1 00:00 2026\n")
    cmds.reply("zfs", "get", stdout="org.bootenv:title\tmy\ttitle\norigin\t-\nused\t1234\n")
    cmds.reply("zpool", "get", stdout="-\n")
    assert zfs.holds("p/a@s") == {"keep", "bootenv"}
    assert zfs.get_props("p/a", ["org.bootenv:title", "origin", "used"]) == {
        "org.bootenv:title": "my\ttitle",
        "used": "1234",
    }
    assert cmds.calls[1] == ["zfs", "get", "-H", "-p", "-o", "property,value", "org.bootenv:title,origin,used", "p/a"]
    assert zfs.pool_get("p", "bootfs") is None


def test_exists(cmds, zfs):
    cmds.reply("zfs", "list", "-H", "-o", "name", "-t", "filesystem,snapshot,volume", "p/no", rc=1,
               stderr="cannot open 'p/no': dataset does not exist\n")
    assert zfs.exists("p/no") is False
    assert zfs.exists("p/yes") is True


# ----------------------------------------------------------------- mounts


def test_mountinfo_unescapes_octal():
    assert unescape_mountinfo(r"/mnt/with\040space\011tab\134back") == "/mnt/with space\ttab\\back"
    assert unescape_mountinfo(r"/mnt/caf\303\251") == "/mnt/café"


def test_parse_mountinfo_with_optional_fields():
    text = (
        "22 1 0:21 / / rw,relatime shared:1 - zfs rpool/ROOT/debian rw,xattr\n"
        "23 22 0:22 / /mnt/my\\040be rw shared:2 master:1 - zfs rpool/ROOT/my\\040be rw\n"
        "24 22 0:5 / /dev rw - devtmpfs udev rw\n"
    )
    assert parse_mountinfo(text) == [
        ("/", "zfs", "rpool/ROOT/debian"),
        ("/mnt/my be", "zfs", "rpool/ROOT/my be"),
        ("/dev", "devtmpfs", "udev"),
    ]


def test_mounted_at(cmds, zfs):
    cmds.mountinfo.write_text(
        cmds.mount_line("/", "p/ROOT/a")
        + cmds.mount_line("/mnt/x", "p/ROOT/b")
        + cmds.mount_line("/mnt/x", "p/ROOT/c")  # mounted over b
        + cmds.mount_line("/mnt/y", "p/ROOT/d")
        + cmds.mount_line("/mnt/y", "tmpfs", fstype="tmpfs")  # covered by tmpfs
    )
    assert zfs.mounted_at("/") == "p/ROOT/a"
    assert zfs.mounted_at("/mnt/x/") == "p/ROOT/c"
    assert zfs.mounted_at("/mnt/y") is None
    assert zfs.mounted_at("/mnt/z") is None


def test_mount_uses_zfsutil_and_refuses_a_mounted_fs(cmds, zfs):
    zfs.mount("p/ROOT/b", "/mnt/b")
    assert cmds.calls == [["mount", "-t", "zfs", "-o", "zfsutil", "p/ROOT/b", "/mnt/b"]]
    cmds.mountinfo.write_text(cmds.mount_line("/mnt/b", "p/ROOT/b"))
    with pytest.raises(DatasetBusy):
        zfs.mount("p/ROOT/b", "/mnt/other")


def test_unmount(cmds, zfs):
    cmds.mountinfo.write_text(cmds.mount_line("/mnt/b", "p/ROOT/b"))
    cmds.reply("umount", stderr="umount: /mnt/b: target is busy.\n", rc=32)
    with pytest.raises(DatasetBusy):
        zfs.unmount("p/ROOT/b")
    assert cmds.calls == [["umount", "/mnt/b"]]



def test_rename_shape_is_checked_before_any_call(cmds, zfs):
    with pytest.raises(InvalidName):
        zfs.rename("p/a@s", "p/c@s")  # another filesystem's snapshot
    with pytest.raises(InvalidName):
        zfs.rename("p/a", "p/a@s")
    assert cmds.calls == []
    zfs.rename("p/a@s", "p/a@t")
    assert cmds.calls == [["zfs", "rename", "p/a@s", "p/a@t"]]


def test_unmount_of_an_unmounted_filesystem(cmds, zfs):
    from bootenv.zfs.base import NotMounted

    with pytest.raises(NotMounted):
        zfs.unmount("p/a")  # the fake zfs says it exists
    cmds.reply("zfs", "list", stderr="cannot open 'p/b': dataset does not exist\n", rc=1)
    with pytest.raises(DatasetNotFound):
        zfs.unmount("p/b")


def test_destroy_preview_is_one_listing_and_one_dry_run_per_filesystem(cmds, zfs):
    cmds.reply("zfs", "list", stdout="p/ROOT/c\t2048\np/ROOT/a@s\t0\np/ROOT/a@t\t0\np/ROOT/b@u\t0\n")
    cmds.reply("zfs", "destroy", "-n", "-v", "-p", "-R", "p/ROOT/a@s,t", stdout="destroy\tp/ROOT/a@s\ndestroy\tp/ROOT/a@t\nreclaim\t8192\n")
    cmds.reply("zfs", "destroy", "-n", "-v", "-p", "-R", "p/ROOT/b@u", stdout="destroy\tp/ROOT/b@u\nreclaim\t100\n")
    assert zfs.destroy_preview(["p/ROOT/c", "p/ROOT/a@s", "p/ROOT/a@t", "p/ROOT/b@u"]) == 2048 + 8192 + 100
    assert cmds.calls == [
        ["zfs", "list", "-H", "-p", "-o", "name,usedbydataset", "-t", "filesystem,volume,snapshot",
         "p/ROOT/c", "p/ROOT/a@s", "p/ROOT/a@t", "p/ROOT/b@u"],
        ["zfs", "destroy", "-n", "-v", "-p", "-R", "p/ROOT/a@s,t"],
        ["zfs", "destroy", "-n", "-v", "-p", "-R", "p/ROOT/b@u"],
    ]


def test_destroy_preview_of_a_missing_name(cmds, zfs):
    cmds.reply("zfs", "list", rc=1, stderr="cannot open 'p/no': dataset does not exist\n")
    with pytest.raises(DatasetNotFound):
        zfs.destroy_preview(["p/no"])


def test_pool_get_later_starts_zpool_at_once_and_maps_its_errors(cmds, zfs):
    """engine.scan starts the `zpool get bootfs` before its `zfs list` and
    reads it after: the process is running (here: logged) before the value
    is asked for, the value is pool_get's, and a failure is the same ZfsError."""
    import time

    cmds.reply("zpool", "get", "-H", "-p", "-o", "value", "bootfs", "p", stdout="p/ROOT/a\n")
    cmds.reply("zpool", "get", "-H", "-p", "-o", "value", "bootfs", "q", rc=1, stderr="cannot open 'q': no such pool\n")
    later = zfs.pool_get_later("p", "bootfs")
    deadline = time.monotonic() + 10
    while not any(c[:2] == ["zpool", "get"] for c in cmds.calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(c[:2] == ["zpool", "get"] for c in cmds.calls), "zpool get was not started before its value was asked for"
    assert later() == "p/ROOT/a"
    with pytest.raises(ZfsError):
        zfs.pool_get_later("q", "bootfs")()


def test_runner_start_waits_and_raises_like_run(tmp_path):
    ok = Runner().start(["sh", "-c", "echo out; echo err >&2"])()
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "out\n", "err\n")
    from bootenv.run import CommandFailed, CommandNotFound

    with pytest.raises(CommandFailed) as failed:
        Runner().start(["sh", "-c", "echo no >&2; exit 3"])()
    assert failed.value.returncode == 3 and "no" in failed.value.stderr
    with pytest.raises(CommandNotFound):
        Runner().start([str(tmp_path / "missing")])
