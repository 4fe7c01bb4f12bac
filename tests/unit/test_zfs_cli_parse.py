"""ZfsCommands / LzcZfs / open_backend on the host (no ZFS): argv building,
`-H -p` parsing, the stderr -> ZfsError table, mountinfo, dry-run, the
libzfs_core exception table and backend selection.

Commands are real processes: a recording fake `zfs` (and `zpool`, `mount`,
`umount`) written to tmp_path that answers from a script of canned
replies. The libzfs_core module is replaced by a small stand-in with the
same exception class names.
"""

from __future__ import annotations

import errno
import json
import stat
import sys
import types

import pytest

from bootenv.zfs import factory
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

# ------------------------------------------------------------------ fakes

FAKE_CMD = """\
import json, os, sys
state = os.environ["FAKECMD_STATE"]
prog = os.path.basename(sys.argv[0])
argv = [prog] + sys.argv[1:]
with open(os.path.join(state, "calls.jsonl"), "a") as f:
    f.write(json.dumps(argv) + "\\n")
with open(os.path.join(state, "replies.json")) as f:
    replies = json.load(f)
for reply in replies:
    if argv[: len(reply["prefix"])] == reply["prefix"]:
        sys.stdout.write(reply.get("stdout", ""))
        sys.stderr.write(reply.get("stderr", ""))
        sys.exit(reply.get("rc", 0))
sys.exit(0)
"""


class FakeCommands:
    """Recording fake zfs/zpool/mount/umount on PATH."""

    def __init__(self, tmp_path, monkeypatch):
        self.dir = tmp_path / "fakecmd"
        self.bin = self.dir / "bin"
        self.bin.mkdir(parents=True)
        for prog in ("zfs", "zpool", "mount", "umount"):
            path = self.bin / prog
            path.write_text(f"#!{sys.executable}\n{FAKE_CMD}")
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("FAKECMD_STATE", str(self.dir))
        monkeypatch.setenv("PATH", f"{self.bin}:/usr/bin:/bin")
        self.replies: list[dict] = []
        self.mountinfo = self.dir / "mountinfo"
        self.mountinfo.write_text("")
        self._save()

    def _save(self):
        (self.dir / "replies.json").write_text(json.dumps(self.replies))

    def reply(self, *prefix: str, stdout: str = "", stderr: str = "", rc: int = 0):
        """Answer commands starting with `prefix` (first match wins)."""
        self.replies.append({"prefix": list(prefix), "stdout": stdout, "stderr": stderr, "rc": rc})
        self._save()

    @property
    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def mount_line(self, mountpoint: str, source: str, fstype: str = "zfs") -> str:
        return f"100 1 0:50 / {mountpoint} rw,relatime shared:1 - {fstype} {source} rw,xattr,posixacl\n"


@pytest.fixture
def cmds(tmp_path, monkeypatch):
    return FakeCommands(tmp_path, monkeypatch)


@pytest.fixture
def zfs(cmds):
    return ZfsCommands(Runner(), mountinfo=str(cmds.mountinfo))


# ------------------------------------------------------------------- list


def row(name: str, **props: str) -> str:
    values = {p: "-" for p in LIST_PROPERTIES}
    values["type"] = "snapshot" if "@" in name else "filesystem"
    values.update(props)
    return "\t".join([name, *(values[p] for p in LIST_PROPERTIES)])


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


# ------------------------------------------------------ libzfs_core stand-in


def fake_lzc_module():
    """A stand-in for libzfs_core: the exception classes bootenv meets (same
    names, same shape) and recording functions."""
    exc = types.ModuleType("libzfs_core.exceptions")

    class ZFSError(Exception):
        errno = None
        name = None

    def cls(name, base, err):
        return type(name, (base,), {"errno": err, "__init__": lambda self, n=None: setattr(self, "name", n)})

    exc.ZFSError = ZFSError
    exc.DatasetNotFound = cls("DatasetNotFound", ZFSError, errno.ENOENT)
    exc.FilesystemNotFound = cls("FilesystemNotFound", exc.DatasetNotFound, errno.ENOENT)
    exc.DatasetExists = cls("DatasetExists", ZFSError, errno.EEXIST)
    exc.SnapshotExists = cls("SnapshotExists", exc.DatasetExists, errno.EEXIST)
    exc.SnapshotIsCloned = cls("SnapshotIsCloned", ZFSError, errno.EEXIST)
    exc.SnapshotIsHeld = cls("SnapshotIsHeld", ZFSError, errno.EBUSY)
    exc.DatasetBusy = cls("DatasetBusy", ZFSError, errno.EBUSY)
    exc.NameInvalid = cls("NameInvalid", ZFSError, errno.EINVAL)
    exc.SnapshotNameInvalid = cls("SnapshotNameInvalid", exc.NameInvalid, errno.EINVAL)
    exc.PoolsDiffer = cls("PoolsDiffer", ZFSError, errno.EXDEV)

    class ZFSGenericError(ZFSError):
        def __init__(self, err, name, message):
            self.errno, self.name, self.message = err, name, message

    class MultipleOperationsFailure(ZFSError):
        def __init__(self, errors, suppressed):
            self.errors, self.errno = errors, errors[0].errno

    exc.ZFSGenericError = ZFSGenericError
    exc.SnapshotFailure = type("SnapshotFailure", (MultipleOperationsFailure,), {})
    exc.SnapshotDestructionFailure = type("SnapshotDestructionFailure", (MultipleOperationsFailure,), {})
    for value in vars(exc).values():
        if isinstance(value, type):
            value.__module__ = "libzfs_core.exceptions"

    mod = types.ModuleType("libzfs_core")
    mod.exceptions = exc
    mod.calls = []
    mod.raises = {}
    mod.existing = set()

    def recorder(fname, result=None):
        def f(*args):
            mod.calls.append((fname, *args))
            if fname in mod.raises:
                raise mod.raises[fname]
            return result(*args) if callable(result) else result

        return f

    for fname in ("lzc_snapshot", "lzc_clone", "lzc_promote", "lzc_rename", "lzc_destroy", "lzc_destroy_snaps"):
        setattr(mod, fname, recorder(fname))
    mod.lzc_exists = recorder("lzc_exists", lambda name: name in mod.existing)
    mod.lzc_hold = recorder("lzc_hold", [])
    mod.lzc_release = recorder("lzc_release", [])
    mod.lzc_get_holds = recorder("lzc_get_holds", {b"keep": 1700000000})
    return mod


@pytest.fixture
def lzc(cmds):
    from bootenv.zfs.lzc import LzcZfs

    mod = fake_lzc_module()
    return LzcZfs(Runner(), lzc=mod, mountinfo=str(cmds.mountinfo)), mod


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

    from .fake_proc import FakeProc

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
    from .fake_proc import FakeProc

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


# ---------------------------------------------------------------- factory


def test_factory_named_backends(cmds, monkeypatch):
    from bootenv.zfs.lzc import LzcZfs

    assert type(factory.open_backend("cli")) is ZfsCommands
    monkeypatch.setitem(sys.modules, "libzfs_core", fake_lzc_module())
    assert type(factory.open_backend("lzc")) is LzcZfs
    with pytest.raises(ValueError):
        factory.open_backend("zfs-fuse")


def test_factory_env_and_fake(monkeypatch, tmp_path):
    opened = []
    stub = types.ModuleType("bootenv.zfs.fake")
    stub.open_fake = lambda path: opened.append(path) or "FAKE"
    monkeypatch.setitem(sys.modules, "bootenv.zfs.fake", stub)
    monkeypatch.setenv("BOOTENV_ZFS", f"fake:{tmp_path}/state.json")
    assert factory.open_backend() == "FAKE"
    assert opened == [f"{tmp_path}/state.json"]


def test_factory_auto(monkeypatch, tmp_path, cmds):
    from bootenv.zfs.lzc import LzcZfs

    monkeypatch.delenv("BOOTENV_ZFS", raising=False)
    monkeypatch.setattr(factory, "DEV_ZFS", str(tmp_path / "no-dev-zfs"))
    with pytest.raises(ZfsUnavailable, match="no-dev-zfs is missing"):
        factory.open_backend(None)
    dev = tmp_path / "zfs-dev"
    dev.write_text("")
    monkeypatch.setattr(factory, "DEV_ZFS", str(dev))
    monkeypatch.setitem(sys.modules, "libzfs_core", None)  # import fails
    assert type(factory.open_backend("auto")) is ZfsCommands  # fake zfs on PATH
    monkeypatch.setitem(sys.modules, "libzfs_core", fake_lzc_module())
    assert type(factory.open_backend("auto")) is LzcZfs
    monkeypatch.setitem(sys.modules, "libzfs_core", None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ZfsUnavailable):
        factory.open_backend("auto")


def test_factory_imports_nothing_heavy():
    import subprocess

    code = (
        "import sys; import bootenv.zfs.factory; "
        "print(sorted(m for m in sys.modules if m.startswith(('bootenv.zfs.', 'libzfs_core', 'subprocess'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["bootenv.zfs.base", "bootenv.zfs.factory"]


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
