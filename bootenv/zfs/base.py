"""The ZFS backend protocol and the errors every backend raises.

Three backends implement `ZfsBackend`: `fake.FakeZfs` (in memory, for
tests), `cli.ZfsCommands` (the zfs/zpool commands) and `lzc.LzcZfs`
(libzfs_core for mutations, the commands for reads). The contract suite in
tests/contract runs the same behaviours against each of them, so the engine
can trust any backend to act like OpenZFS.

Names are full ZFS names: `pool/ROOT/debian`, `pool/ROOT/debian@snap`.
Property values are strings, as `zfs get -H -p` prints them; numeric
properties (used, createtxg, ...) are decimal byte/txg counts.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

# Properties `Dataset` always carries; a listing fetches them in one call.
LIST_PROPERTIES: tuple[str, ...] = (
    "type",
    "createtxg",
    "creation",
    "origin",
    "used",
    "referenced",
    "usedbysnapshots",
    "usedbydataset",
    "usedbychildren",
    "mountpoint",
    "canmount",
    "mounted",
    "userrefs",  # snapshots: the number of user holds ('-', absent, on a filesystem)
    # snapshots: every clone of it, comma-separated, wherever it lives (a
    # clone outside the listed root is a dependant the plan must see)
    "clones",
    # whose key a filesystem uses ('-', absent, when unencrypted): a BE's
    # checkpoints share it (list says `encrypted`)
    "encryptionroot",
)


# ---------------------------------------------------------------- errors


class ZfsError(Exception):
    """A ZFS operation failed. `name` is the dataset it failed on (or None),
    `errno` the errno OpenZFS reported."""

    errno: int = _errno.EIO

    def __init__(self, message: str, name: str | None = None, errno: int | None = None):
        super().__init__(message)
        self.name = name
        if errno is not None:
            self.errno = errno


class DatasetNotFound(ZfsError):
    """The dataset, snapshot or pool does not exist."""

    errno = _errno.ENOENT


class DatasetExists(ZfsError):
    """A dataset or snapshot of that name already exists."""

    errno = _errno.EEXIST


class DatasetBusy(ZfsError):
    """The dataset is in use: mounted, or a snapshot with user holds."""

    errno = _errno.EBUSY


class HasDependents(ZfsError):
    """Destroy refused: the dataset has children, snapshots or clones."""

    errno = _errno.EEXIST


class SnapshotHeld(DatasetBusy):
    """Destroy refused: the snapshot (or one under the dataset) has holds."""


class NotAClone(ZfsError):
    """Promote refused: the filesystem has no origin."""

    errno = _errno.EINVAL


class NotMounted(ZfsError):
    """Unmount refused: the filesystem is not mounted."""

    errno = _errno.EINVAL


class InvalidName(ZfsError):
    """ZFS rejects the name (characters, length, wrong kind of dataset)."""

    errno = _errno.EINVAL


class InvalidProperty(ZfsError):
    """Unknown property, or a value ZFS rejects."""

    errno = _errno.EINVAL


class CrossPool(ZfsError):
    """Rename or clone across pools (ZFS has no such thing)."""

    errno = _errno.EXDEV


class NoSpace(ZfsError):
    """Out of space in the pool."""

    errno = _errno.ENOSPC


class PermissionDenied(ZfsError):
    """Not allowed (not root, or delegated permissions missing)."""

    errno = _errno.EPERM


class ZfsUnavailable(ZfsError):
    """No ZFS here: no /dev/zfs, no zfs command, or no libzfs_core."""

    errno = _errno.ENODEV


# ------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Dataset:
    """One row of a listing: a filesystem or snapshot with its properties.

    `props` holds every fetched property as a string, native and user
    (`org.bootenv:title`); a property that is unset ('-') is absent.
    """

    name: str
    props: Mapping[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.props.get("type", "filesystem")

    @property
    def is_snapshot(self) -> bool:
        return "@" in self.name

    @property
    def filesystem(self) -> str:
        """The filesystem part of the name (the name itself for a filesystem)."""
        return self.name.split("@", 1)[0]

    @property
    def snapname(self) -> str | None:
        return self.name.split("@", 1)[1] if self.is_snapshot else None

    @property
    def origin(self) -> str | None:
        return self.props.get("origin") or None

    @property
    def createtxg(self) -> int:
        return int(self.props.get("createtxg", "0"))

    def number(self, prop: str) -> int:
        """A numeric property, 0 when absent."""
        value = self.props.get(prop, "0")
        return int(value) if value not in ("", "-") else 0

    def user(self, prop: str) -> str | None:
        return self.props.get(prop)


@dataclass(frozen=True)
class DiffEntry:
    """One line of `zfs diff -H -F`: `change` is + (added), - (removed),
    M (modified) or R (renamed); `kind` the file type letter (F file, /
    directory, @ symlink, B/C devices, | pipe, = socket); `path` relative
    to the filesystem's root, starting with '/'; `new_path` for R."""

    change: str
    kind: str
    path: str
    new_path: str | None = None


# ------------------------------------------------------------- protocol


@runtime_checkable
class ZfsBackend(Protocol):
    """What the engine needs from ZFS. Every method raises a ZfsError
    subclass on failure and changes nothing when it raises (operations on
    several names validate all of them before mutating any)."""

    def list(
        self,
        root: str,
        *,
        snapshots: bool = False,
        user_props: Sequence[str] = (),
    ) -> list[Dataset]:
        """Given a filesystem, return it and every filesystem below it (and
        their snapshots when `snapshots`), with LIST_PROPERTIES plus the
        named user properties, in ONE listing call, sorted by createtxg.
        Raise DatasetNotFound if `root` does not exist."""
        ...

    def exists(self, name: str) -> bool:
        """Return whether the filesystem or snapshot exists."""
        ...

    def snapshot(self, names: Iterable[str], props: Mapping[str, str] | None = None) -> None:
        """Create all snapshots atomically (one transaction: all or none),
        each with the given user properties. Raise DatasetExists,
        DatasetNotFound, InvalidName."""
        ...

    def clone(self, origin: str, target: str, props: Mapping[str, str] | None = None) -> None:
        """Clone snapshot `origin` as filesystem `target` with properties
        (native or user) set at creation. The clone is not mounted.
        Raise DatasetNotFound, DatasetExists, InvalidName, CrossPool."""
        ...

    def create(self, name: str, props: Mapping[str, str] | None = None) -> None:
        """Create an empty filesystem with properties set at creation (give
        it canmount=noauto to have it not mounted). Raise DatasetExists,
        DatasetNotFound (its parent), InvalidName."""
        ...

    def promote(self, name: str) -> None:
        """Promote clone `name`: its origin snapshot and every older snapshot
        of the origin filesystem move to it, other clones of those snapshots
        are re-pointed. Raise NotAClone, DatasetExists (snapshot name
        collision)."""
        ...

    def rename(self, old: str, new: str) -> None:
        """Rename a filesystem (with its children and snapshots) or a
        snapshot. Clones keep their origin (re-pointed to the new name).
        Raise DatasetNotFound, DatasetExists, CrossPool, InvalidName."""
        ...

    def destroy(self, name: str) -> None:
        """Destroy one filesystem or snapshot, never recursively.
        Raise HasDependents (children, snapshots, clones), DatasetBusy
        (mounted filesystem), SnapshotHeld, DatasetNotFound."""
        ...

    def destroy_preview(self, names: Sequence[str]) -> int:
        """Given filesystems and snapshots to destroy together, return the
        bytes destroying them all frees, as ZFS computes it for that set
        (snapshots of one filesystem: `zfs destroy -nvp fs@a,b,c` in one
        call, which counts blocks shared between them, where adding each
        snapshot's `used` does not; a filesystem: its usedbydataset). The
        set must be closed: a snapshot's clones, a filesystem's snapshots
        and children are in it too (the engine's destroy plans are).
        Changes nothing. Raise DatasetNotFound."""
        ...

    def hold(self, snapshot: str, tag: str) -> None:
        """Place a user hold. Raise DatasetExists if the tag is held."""
        ...

    def release(self, snapshot: str, tag: str) -> None:
        """Release a user hold. Raise DatasetNotFound if not held."""
        ...

    def holds(self, snapshot: str) -> frozenset[str]:
        """Return the hold tags on a snapshot."""
        ...

    def get_props(self, name: str, props: Sequence[str]) -> dict[str, str]:
        """Return the named properties (native or user) that are set."""
        ...

    def set_props(self, name: str, props: Mapping[str, str]) -> None:
        """Set native and user properties. Raise InvalidProperty."""
        ...

    def inherit(self, name: str, prop: str) -> None:
        """Clear a local property (a user property disappears)."""
        ...

    def pool_get(self, pool: str, prop: str) -> str | None:
        """Return a pool property (None when unset, e.g. bootfs '-')."""
        ...

    def pool_set(self, pool: str, prop: str, value: str) -> None:
        """Set a pool property (bootfs must name a filesystem of the pool)."""
        ...

    def mount(self, name: str, path: str, *, readonly: bool = False) -> None:
        """Mount filesystem `name` at `path` regardless of its mountpoint
        property (what `mount -t zfs -o zfsutil` does), read-only when
        `readonly` (a look inside that must not change it: not even
        atimes, so `written` stays 0). Raise DatasetBusy if it is already
        mounted."""
        ...

    def unmount(self, name: str) -> None:
        """Unmount a filesystem. Raise DatasetBusy if in use (the running
        root always is; so is one with a filesystem mounted below it),
        NotMounted if it is not mounted."""
        ...

    def mounted_at(self, path: str) -> str | None:
        """Return the ZFS filesystem mounted at `path`, or None."""
        ...

    def diff(self, snapshot: str, target: str) -> list[DiffEntry]:
        """Given a snapshot and a later state that descends from it (its
        filesystem, a later snapshot of it, or a clone whose origin chain
        holds it), return what changed from one to the other, as
        `zfs diff -H -F` reports it. The snapshot's filesystem and the
        target's must both be mounted (zfs diff reads paths through them). Raise DatasetNotFound,
        InvalidName (not an earlier snapshot of the target's lineage),
        NotMounted."""
        ...

    def written_since(self, snapshot: str, target: str) -> int:
        """Bytes written to filesystem `target` since `snapshot` (the
        `written@snapshot` property; for a clone, a snapshot of its origin
        chain). Raise DatasetNotFound, InvalidName."""
        ...

    def private_mounts(self) -> None:
        """From now on, mounts this process (and what it starts) makes are
        seen by no other mount namespace (real backends: a namespace of
        bootenv's own, bootenv/mountns.py). Idempotent. Raise
        PermissionDenied if the system refuses."""
        ...


def pool_of(name: str) -> str:
    """The pool a dataset name belongs to."""
    return name.split("/", 1)[0].split("@", 1)[0]


def parent_of(name: str) -> str | None:
    """The parent filesystem of a filesystem (the filesystem of a snapshot)."""
    if "@" in name:
        return name.split("@", 1)[0]
    return name.rsplit("/", 1)[0] if "/" in name else None


def pool_get_later(zfs: "ZfsBackend", pool: str, prop: str) -> Callable[[], str | None]:
    """Start reading a pool property; the returned call gives what
    zfs.pool_get would (raising what it would). A backend that reads it
    with a process (ZfsCommands.pool_get_later) starts that process now,
    so it runs beside the listing the caller makes meanwhile; the others
    read it when asked."""
    later = getattr(zfs, "pool_get_later", None)
    return later(pool, prop) if later else (lambda: zfs.pool_get(pool, prop))
