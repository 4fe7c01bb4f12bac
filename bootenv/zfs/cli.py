"""`ZfsCommands`: a ZfsBackend that drives the `zfs` and `zpool` commands.

Works on every OpenZFS 2.x (Debian bookworm has 2.1: no `zfs list -j`), so
reads parse `-H -p` output: tab-separated fields, exact numbers, '-' for
unset. A listing is ONE `zfs list` process scoped to the caller's root,
never one process per dataset, and snapshots only when asked for: in the
QEMU guest each zfs process costs about a second, and on big pools it is
snapshot listing that makes `zfs list` slow.

Failures come back as ZfsError subclasses; which one is decided from the
command's stderr (run with LC_ALL=C) by one table, `ERROR_TABLE`.

Mount state is read from /proc/self/mountinfo (no process at all).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterable, Mapping, Sequence

from . import mountns
from .. import run as _run
from .mountinfo import explain_busy, namespace_holds, parse_mountinfo, unescape_mountinfo  # noqa: F401 (re-exported)
from .base import (
    LIST_PROPERTIES,
    CrossPool,
    Dataset,
    DatasetBusy,
    DiffEntry,
    DatasetExists,
    DatasetNotFound,
    HasDependents,
    InvalidName,
    InvalidProperty,
    NoSpace,
    NotAClone,
    NotMounted,
    PermissionDenied,
    SnapshotHeld,
    ZfsError,
    ZfsUnavailable,
    pool_of,
)

# ------------------------------------------------------------ error table

# (pattern on stderr, error class), first match wins, so the specific
# messages come before the generic ones. Patterns are the descriptions
# libzfs prints after "cannot <action> '<name>': " (LC_ALL=C), plus those
# of mount(8)/umount(8) and mount.zfs.
ERROR_TABLE: tuple[tuple[re.Pattern[str], type[ZfsError]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), cls)
    for pattern, cls in (
        # zfs promote of a filesystem without origin
        (r"not a cloned filesystem", NotAClone),
        # zfs diff of a filesystem that is not mounted
        (r"cannot diff an unmounted", NotMounted),
        # zfs diff of unrelated datasets ("not an earlier snapshot from the
        # same fs"), written@ of a snapshot outside the lineage
        (r"not an earlier snapshot|not a descendant|snapshot of the origin", InvalidName),
        # zfs diff from a snapshot that does not exist (2.3: ENOENT from the ioctl)
        (r"unable to obtain diffs: no such file", DatasetNotFound),
        # zfs destroy without -r / -R: "filesystem has children",
        # "snapshot has dependent clones", "snapshot is cloned"
        (r"has children|has dependent clones|snapshot is cloned", HasDependents),
        # a user hold: "cannot destroy snapshot p/a@s: it's being held. Run
        # 'zfs holds -r p/a@s' to see holders." (2.3; older: "dataset is busy")
        (r"being held|cannot destroy snapshot .*: dataset is busy", SnapshotHeld),
        # zfs rename a@s b@s
        (r"snapshots must be part of same dataset", InvalidName),
        # rename/clone across pools
        (r"within same pool|pools differ|crosses datasets or pools", CrossPool),
        # "dataset does not exist", "no such pool", "no such tag on this
        # dataset" (release), "could not find any snapshots to destroy"
        (r"does not exist|no such pool|no such tag|no such dataset|could not find any snapshots", DatasetNotFound),
        # "dataset already exists", "tag already exists on this dataset",
        # promote: "conflicting snapshot 'x' from parent 'y'"
        (r"already exists|conflicting snapshot|pool or dataset exists", DatasetExists),
        # "dataset is busy", "pool or dataset is busy", umount "target is busy",
        # mount.zfs "filesystem 'x' is already mounted"
        (r"is busy|already mounted|device or resource busy", DatasetBusy),
        (
            r"invalid character|invalid (dataset |snapshot )?name|name is too long|leading slash"
            r"|trailing slash|empty component|delimiter|is an invalid name|multiple '@'"
            r"|not applicable to datasets of this type|multiple snapshots of same fs",
            InvalidName,
        ),
        (r"out of space|quota exceeded|no space left", NoSpace),
        (r"permission denied|must be run as root|operation not permitted", PermissionDenied),
        (r"property|does not apply to datasets|must be one of|bad numeric value|invalid option value", InvalidProperty),
        (r"the zfs modules are not loaded|/dev/zfs", ZfsUnavailable),
    )
)


def error_from_stderr(stderr: str, name: str | None = None) -> ZfsError:
    """Given the stderr of a failed zfs/zpool/mount command, return the
    ZfsError subclass the table picks (plain ZfsError when none matches),
    carrying the message."""
    message = " ".join(line.strip() for line in stderr.strip().splitlines() if line.strip())
    message = message or "zfs command failed"
    for pattern, cls in ERROR_TABLE:
        if pattern.search(stderr):
            return cls(message, name)
    return ZfsError(message, name)


# ----------------------------------------------------------------- parsing


def parse_list(output: str, columns: Sequence[str], root: str) -> tuple[list[Dataset], list[str]]:
    """Given `zfs list -H -p -o <columns>` output (columns[0] is "name"),
    return the datasets and the names whose rows could not be split exactly
    (a value holding a tab or a newline). '-' means unset: the property is
    left out. A tab inside the last column is kept (the extra fields are
    joined back); a row whose line is cut by a newline is joined to the
    next line."""
    width = len(columns)
    rows: list[list[str]] = []
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last row
    for line in lines:
        fields = line.split("\t")
        starts_row = len(fields) >= 2 and _in_tree(fields[0], root) and fields[1] in ("filesystem", "snapshot", "volume")
        if not starts_row and rows:
            rows[-1][-1] += "\n" + fields[0]
            rows[-1].extend(fields[1:])
            continue
        rows.append(fields)
    datasets: list[Dataset] = []
    ambiguous: list[str] = []
    for fields in rows:
        if len(fields) > width:
            # Only the last column can absorb extra tabs unambiguously.
            fields = fields[: width - 1] + ["\t".join(fields[width - 1 :])]
            if width - 1 > _first_free_column(columns):
                ambiguous.append(fields[0])
        elif len(fields) < width:
            ambiguous.append(fields[0])
            fields = fields + ["-"] * (width - len(fields))
        props = {col: val for col, val in zip(columns[1:], fields[1:]) if val != "-"}
        datasets.append(Dataset(fields[0], props))
    return datasets, ambiguous


def parse_reclaim(output: str) -> int:
    """The `reclaim` line of `zfs destroy -nvp` (0 when absent)."""
    for line in output.splitlines():
        key, _, value = line.partition("\t")
        if key == "reclaim" and value.strip().isdigit():
            return int(value)
    return 0


def _unescape_diff(text: str) -> str:
    """zfs diff prints bytes outside printable ASCII (and spaces, and
    backslashes) as \\ooo octal escapes: undo them (bytes, then UTF-8)."""
    if "\\" not in text:
        return text
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), text.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def parse_diff(output: str, mountpoints: Sequence[str] = ()) -> list[DiffEntry]:
    """Given `zfs diff -H -F` output, return its entries with paths made
    relative to the filesystem (the mount path it printed stripped)."""
    roots = sorted((m.rstrip("/") for m in mountpoints), key=len, reverse=True)

    def rel(path: str) -> str:
        path = _unescape_diff(path)
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return path[len(root):] or "/"
        return path

    entries = []
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0] not in ("+", "-", "M", "R"):
            continue
        new = rel(fields[3]) if fields[0] == "R" and len(fields) > 3 else None
        entries.append(DiffEntry(fields[0], fields[1], rel(fields[2]), new))
    return entries


def _first_free_column(columns: Sequence[str]) -> int:
    """Index of the first column whose value may hold any character (a user
    property); every native column is tab-free."""
    for i, col in enumerate(columns):
        if ":" in col:
            return i
    return len(columns)


def _in_tree(name: str, root: str) -> bool:
    return name == root or name.startswith(root + "/") or name.startswith(root + "@")




# ----------------------------------------------------------------- backend


@contextlib.contextmanager
def _mapped(name: str | None):
    """A failed zfs/zpool command as the ZfsError its stderr says (a missing
    command: ZfsUnavailable)."""
    try:
        yield
    except _run.CommandNotFound as exc:
        raise ZfsUnavailable(f"no ZFS on this machine: {exc.stderr}", name) from None
    except _run.CommandFailed as exc:
        raise error_from_stderr(exc.stderr or exc.stdout, name) from None


def _pool_value(out: str) -> str | None:
    """`zpool get -H -o value`'s answer: None when unset ('-')."""
    value = out.rstrip("\n")
    return None if value in ("-", "") else value


class ZfsCommands:
    """ZfsBackend over the zfs/zpool/mount/umount commands.

    `runner` runs the commands (dry-run lives there; default: the
    process-wide runner); `mountinfo` is the file mount state is read from.
    """

    # Whether `zfs clone -u` (do not mount; OpenZFS >= 2.2) works; learnt on
    # first use.
    _clone_u: bool | None = None

    def __init__(
        self,
        runner: _run.Runner | None = None,
        *,
        zfs: str = "zfs",
        zpool: str = "zpool",
        mountinfo: str = "/proc/self/mountinfo",
        proc: str = "/proc",
    ):
        self._runner = runner
        self.zfs_cmd = zfs
        self.zpool_cmd = zpool
        self.mountinfo_path = mountinfo
        self.proc_path = proc

    # -- plumbing

    @property
    def runner(self) -> _run.Runner:
        return self._runner or _run.default_runner

    def _cmd(self, argv: Sequence[str], *, name: str | None = None, mutating: bool = False) -> str:
        """Run a command; return its stdout; raise the mapped ZfsError."""
        with _mapped(name):
            return self.runner.run(argv, mutating=mutating).stdout

    def _zfs(self, *args: str, name: str | None = None, mutating: bool = False) -> str:
        return self._cmd([self.zfs_cmd, *args], name=name, mutating=mutating)

    def _zpool(self, *args: str, name: str | None = None, mutating: bool = False) -> str:
        return self._cmd([self.zpool_cmd, *args], name=name, mutating=mutating)

    def _mounts(self) -> list[tuple[str, str, str]]:
        try:
            with open(self.mountinfo_path, encoding="utf-8", errors="surrogateescape") as f:
                return parse_mountinfo(f.read())
        except FileNotFoundError:
            return []

    def mountpoints_of(self, name: str) -> list[str]:
        """Where filesystem `name` is mounted (usually one place, or none)."""
        return [mp for mp, fstype, source in self._mounts() if fstype == "zfs" and source == name]

    def _busy(self, exc: DatasetBusy, name: str, mountpoints: Sequence[str] = ()) -> DatasetBusy:
        """`exc` (EBUSY on `name`) with what holds it: a mount left in
        another namespace, or a process using `mountpoints`. A held
        snapshot is busy for its holds: it stays as it is."""
        if isinstance(exc, SnapshotHeld):
            return exc
        return DatasetBusy(f"{exc}: {explain_busy([name], mountpoints, proc=self.proc_path)}", name, exc.errno)

    def _mounted_in_tree(self, name: str) -> bool:
        """Whether `name`, a descendant or one of their snapshots is mounted."""
        return any(
            fstype == "zfs" and _in_tree(source, name) for _mp, fstype, source in self._mounts()
        )

    @staticmethod
    def _check_same_pool(a: str, b: str) -> None:
        if pool_of(a) != pool_of(b):
            raise CrossPool(f"'{a}' and '{b}' are in different pools", b)

    @classmethod
    def _check_rename(cls, old: str, new: str) -> None:
        """What rename refuses before asking ZFS (so every backend agrees:
        lzc_rename says EXDEV where `zfs rename` says invalid name)."""
        cls._check_same_pool(old, new)
        if ("@" in old) != ("@" in new):
            raise InvalidName(f"cannot rename '{old}' to '{new}': a snapshot stays a snapshot", new)
        if "@" in old and old.split("@", 1)[0] != new.split("@", 1)[0]:
            raise InvalidName(f"cannot rename to '{new}': snapshots must be part of same dataset", new)

    # -- reads

    def list(self, root: str, *, snapshots: bool = False, user_props: Sequence[str] = ()) -> list[Dataset]:
        columns = ["name"]
        for prop in (*LIST_PROPERTIES, *user_props):
            if prop not in columns:
                columns.append(prop)
        types = "filesystem,snapshot" if snapshots else "filesystem"
        out = self._zfs("list", "-H", "-p", "-r", "-t", types, "-o", ",".join(columns), "-s", "createtxg", root, name=root)
        datasets, ambiguous = parse_list(out, columns, root)
        if ambiguous:
            datasets = self._refetch_user_props(datasets, set(ambiguous), [c for c in columns if ":" in c])
        return datasets

    def _refetch_user_props(self, datasets: list[Dataset], names: set[str], user_cols: list[str]) -> list[Dataset]:
        """Re-read, one property at a time, the user properties of rows a
        tab or newline made ambiguous (rare: bootenv writes neither)."""
        fixed = []
        for ds in datasets:
            if ds.name in names:
                props = {k: v for k, v in ds.props.items() if k not in user_cols}
                for col in user_cols:
                    value = self._zfs("get", "-H", "-p", "-o", "value", col, ds.name, name=ds.name)
                    value = value[:-1] if value.endswith("\n") else value
                    if value != "-":
                        props[col] = value
                ds = Dataset(ds.name, props)
            fixed.append(ds)
        return fixed

    def exists(self, name: str) -> bool:
        try:
            self._zfs("list", "-H", "-o", "name", "-t", "filesystem,snapshot,volume", name, name=name)
        except (DatasetNotFound, InvalidName):
            return False
        return True

    def get_props(self, name: str, props: Sequence[str]) -> dict[str, str]:
        if not props:
            return {}
        out = self._zfs("get", "-H", "-p", "-o", "property,value", ",".join(props), name, name=name)
        result: dict[str, str] = {}
        for line in out.split("\n"):
            if "\t" not in line:
                continue
            prop, value = line.split("\t", 1)
            if value != "-" and prop in props:
                result[prop] = value
        return result

    def destroy_preview(self, names: Sequence[str]) -> int:
        snaps: dict[str, list[str]] = {}
        filesystems: list[str] = []
        for name in dict.fromkeys(names):
            if "@" in name:
                fs, snap = name.split("@", 1)
                snaps.setdefault(fs, []).append(snap)
            else:
                filesystems.append(name)
        total = 0
        if names:
            # One listing: every name exists (DatasetNotFound names the
            # first that does not: `zfs destroy fs@a,b` skips a missing
            # one silently), and the filesystems' usedbydataset.
            out = self._zfs("list", "-H", "-p", "-o", "name,usedbydataset", "-t", "filesystem,volume,snapshot", *dict.fromkeys(names), name=names[0])
            wanted = set(filesystems)
            for line in out.splitlines():
                name, _, value = line.partition("\t")
                if name in wanted and value.strip().isdigit():
                    total += int(value)
        for fs, snapnames in snaps.items():
            # One dry run per filesystem over all its snapshots: ZFS sums
            # lzc_snaprange_space over the runs, counting shared blocks once.
            # -R: their clones are in the set too (it is closed), and a dry
            # run without it refuses a snapshot that has clones.
            spec = f"{fs}@{','.join(snapnames)}"
            out = self._zfs("destroy", "-n", "-v", "-p", "-R", spec, name=spec)
            total += parse_reclaim(out)
        return total

    def holds(self, snapshot: str) -> frozenset[str]:
        out = self._zfs("holds", "-H", snapshot, name=snapshot)
        tags = set()
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) >= 2 and fields[0] == snapshot:
                tags.add(fields[1])
        return frozenset(tags)

    def _pool_get_argv(self, pool: str, prop: str) -> list[str]:
        return [self.zpool_cmd, "get", "-H", "-p", "-o", "value", prop, pool]

    def pool_get(self, pool: str, prop: str) -> str | None:
        return _pool_value(self._cmd(self._pool_get_argv(pool, prop), name=pool))

    def pool_get_later(self, pool: str, prop: str):
        """`zpool get` started now, beside the listing that follows (a
        read-only command pays one zfs list and this, at the same time).
        A runner that cannot start a process (tests' recorders) reads it
        when asked."""
        start = getattr(self.runner, "start", None)
        if start is None:
            return lambda: self.pool_get(pool, prop)
        with _mapped(pool):
            wait = start(self._pool_get_argv(pool, prop))

        def value() -> str | None:
            with _mapped(pool):
                return _pool_value(wait().stdout)

        return value

    def mounted_at(self, path: str) -> str | None:
        path = os.path.normpath(path)
        found = None
        for mountpoint, fstype, source in self._mounts():
            if mountpoint == path:
                found = source if fstype == "zfs" else None
        return found

    def diff(self, snapshot: str, target: str) -> list[DiffEntry]:
        fs = target.split("@", 1)[0]
        if "@" not in snapshot:
            raise InvalidName(f"cannot diff '{snapshot}': the first of a diff is a snapshot", snapshot)
        out = self._zfs("diff", "-H", "-F", snapshot, target, name=target)
        return parse_diff(out, self.mountpoints_of(fs))

    def written_since(self, snapshot: str, target: str) -> int:
        out = self._zfs("get", "-H", "-p", "-o", "value", f"written@{snapshot}", target, name=target)
        value = out.strip()
        if not value.isdigit():
            raise InvalidName(f"cannot get written@{snapshot} of '{target}': {value or 'no value'}", target)
        return int(value)

    # -- mutations

    def snapshot(self, names: Iterable[str], props: Mapping[str, str] | None = None) -> None:
        names = list(names)
        if not names:
            return
        for other in names[1:]:
            self._check_same_pool(names[0], other)
        opts: list[str] = []
        for key, value in (props or {}).items():
            opts += ["-o", f"{key}={value}"]
        # One `zfs snapshot` with every name: one lzc_snapshot, one txg.
        self._zfs("snapshot", *opts, *names, name=names[0] if len(names) == 1 else None, mutating=True)

    def create(self, name: str, props: Mapping[str, str] | None = None) -> None:
        opts: list[str] = []
        for key, value in (props or {}).items():
            opts += ["-o", f"{key}={value}"]
        self._zfs("create", *opts, name, name=name, mutating=True)

    def clone(self, origin: str, target: str, props: Mapping[str, str] | None = None) -> None:
        self._check_same_pool(origin, target)
        opts: list[str] = []
        for key, value in (props or {}).items():
            opts += ["-o", f"{key}={value}"]
        if ZfsCommands._clone_u is not False:
            try:
                self._zfs("clone", "-u", *opts, origin, target, name=target, mutating=True)
                ZfsCommands._clone_u = True
                return
            except ZfsError as exc:
                if "invalid option 'u'" not in str(exc):
                    raise
                ZfsCommands._clone_u = False
        # OpenZFS < 2.2: no -u, and `zfs clone` mounts a canmount=on clone.
        self._zfs("clone", *opts, origin, target, name=target, mutating=True)
        for mountpoint in self.mountpoints_of(target):
            self._cmd(["umount", mountpoint], name=target, mutating=True)

    def promote(self, name: str) -> None:
        self._zfs("promote", name, name=name, mutating=True)

    def rename(self, old: str, new: str) -> None:
        self._check_rename(old, new)
        try:
            self._zfs("rename", old, new, name=old, mutating=True)
        except DatasetBusy as exc:
            raise self._busy(exc, old, self.mountpoints_of(old)) from None

    def destroy(self, name: str) -> None:
        if "@" not in name and self.mountpoints_of(name):
            # libzfs_core refuses to destroy a mounted filesystem (EBUSY);
            # `zfs destroy` would unmount it first. Behave like the library.
            raise DatasetBusy(f"cannot destroy '{name}': filesystem is mounted", name)
        try:
            self._zfs("destroy", name, name=name, mutating=True)
        except DatasetBusy as exc:
            raise self._busy(exc, name) from None

    def hold(self, snapshot: str, tag: str) -> None:
        self._zfs("hold", tag, snapshot, name=snapshot, mutating=True)

    def release(self, snapshot: str, tag: str) -> None:
        self._zfs("release", tag, snapshot, name=snapshot, mutating=True)

    def set_props(self, name: str, props: Mapping[str, str]) -> None:
        if not props:
            return
        self._zfs("set", *(f"{k}={v}" for k, v in props.items()), name, name=name, mutating=True)

    def inherit(self, name: str, prop: str) -> None:
        self._zfs("inherit", prop, name, name=name, mutating=True)

    def pool_set(self, pool: str, prop: str, value: str) -> None:
        self._zpool("set", f"{prop}={value}", pool, name=pool, mutating=True)

    def mount(self, name: str, path: str, *, readonly: bool = False) -> None:
        where = self.mountpoints_of(name)
        if where:
            raise DatasetBusy(f"cannot mount '{name}': already mounted at {where[0]}", name)
        try:
            options = "zfsutil,ro" if readonly else "zfsutil"
            self._cmd(["mount", "-t", "zfs", "-o", options, name, path], name=name, mutating=True)
        except ZfsError:
            if not self.exists(name):
                raise DatasetNotFound(f"cannot mount '{name}': dataset does not exist", name) from None
            raise

    def private_mounts(self) -> None:
        if self.runner.dry_run:
            return
        try:
            mountns.enter_private_namespace()
        except OSError as exc:
            raise PermissionDenied(f"cannot give bootenv a mount namespace of its own: {exc.strerror}") from None

    def unmount(self, name: str) -> None:
        where = self.mountpoints_of(name)
        if not where:
            if not self.exists(name):
                raise DatasetNotFound(f"cannot unmount '{name}': dataset does not exist", name)
            raise NotMounted(f"cannot unmount '{name}': not currently mounted", name)
        # Innermost (latest) mount first, should it be mounted twice.
        for mountpoint in reversed(where):
            try:
                self._cmd(["umount", mountpoint], name=name, mutating=True)
            except DatasetBusy as exc:
                raise self._busy(exc, name, [mountpoint]) from None
        if not mountns.in_private_namespace() and not self.runner.dry_run:
            # Mounted in the admin's namespace: service namespaces that
            # received a copy must have dropped it too, or it stays busy.
            holds = namespace_holds([name], self.proc_path)
            if holds:
                raise DatasetBusy(
                    f"unmounted '{name}' here, but it is still mounted in the "
                    + "; the ".join(h.describe() for h in holds)
                    + "; release it with " + "; ".join(h.release() for h in holds),
                    name,
                )
