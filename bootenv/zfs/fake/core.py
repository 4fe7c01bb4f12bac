"""An in-memory ZFS that behaves like OpenZFS (as libzfs_core sees it).

`FakeZfs` implements `ZfsBackend` and raises the ZfsError subclasses real
OpenZFS would, for the same reasons, in the same order of checks. Every
operation validates everything before it mutates anything, so a call that
raises changes nothing. The tests/contract suite runs against it and real
ZFS alike; that is what makes it trustworthy.

Beyond the protocol it offers what tests and scripted scenarios need:
`create_pool`, `create`, `write`/`delete`/`delete_all` (data, with space
accounted like ZFS, see space.py), `fail_next` (fault injection),
`check_invariants`, JSON persistence (`save`/`load`/`session`/`open_fake`)
and a shell entry point (`python -m bootenv.zfs.fake`, see shell.py).

Orderings are by createtxg, a counter every mutation advances; `creation`
comes from an injectable clock and is never used for ordering.

Deliberate differences from OpenZFS, all stricter: mounting over a path
where something is already mounted is refused; one `snapshot` call may not
snapshot the same filesystem twice; snapshots cannot be mounted.
"""

from __future__ import annotations

import errno as _errno
import gc
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..base import (
    LIST_PROPERTIES,
    CrossPool,
    Dataset,
    DatasetBusy,
    DatasetExists,
    DatasetNotFound,
    DiffEntry,
    HasDependents,
    InvalidName,
    InvalidProperty,
    NoSpace,
    NotAClone,
    NotMounted,
    PermissionDenied,
    SnapshotHeld,
    ZfsUnavailable,
    pool_of,
)
from .names import (
    INHERITED_DEFAULTS,
    KEY_PROPS,
    MAX_HOLD_TAG,
    POOL_PROPS,
    POOL_SETTABLE,
    check_gettable,
    check_name,
    check_creatable,
    check_settable,
    check_user_prop,
    is_user_prop,
)
from .listing import ListingMixin, encrypted
from .mounts import MountsMixin
from .ops import op
from .state import FakeState
from .space import Block, Fs, Pool, Snap, content, rebase, subtree

# The native properties listing.py's rows carry.
ROW_PROPS = frozenset(LIST_PROPERTIES) | {"keystatus"}
MiB = 1024 * 1024
DEFAULT_POOL_SIZE = 64 * 1024 * MiB

__all__ = ["FakeZfs", "open_fake", "MiB"]


class FakeZfs(MountsMixin, ListingMixin, FakeState):
    """In-memory OpenZFS. `clock` gives `creation` seconds; `strict` makes
    every public call verify atomicity and `check_invariants()` (tests)."""

    # ------------------------------------------------------------ helpers

    def _collect(self, fs: Fs) -> None:
        """Free the blocks charged to fs that neither its head nor its
        snapshots reference any more (by construction nothing else can:
        whatever else references an fs-owned block depends on one of fs's
        snapshots that holds it)."""
        keep = set(fs.added)
        for s in fs.snaps:
            keep |= s.added
        dead = fs.owned - keep
        for b in dead:
            fs.pool.allocated -= self._blocks.pop(b).size
        fs.owned &= keep
        fs.space = None

    def _rename_tree(self, fs: Fs, new: str) -> None:
        """Give fs the name `new`, renaming its descendants and snapshots."""
        old = fs.name
        for f in subtree(fs):
            del self._fs[f.name]
            f.name = new + f.name[len(old) :]
            self._fs[f.name] = f
            for s in f.snaps:
                del self._snaps[s.name]
                s.rename()
                self._snaps[s.name] = s

    # ------------------------------------------------- pools & datasets

    @op(mutating=True)
    def create_pool(self, name: str, props: Mapping[str, str] | None = None, *, size: int = DEFAULT_POOL_SIZE) -> None:
        """Create pool `name` with its top filesystem `name` (what `zpool
        create` does). `props` are set on the top filesystem."""
        check_name(name, "filesystem")
        if "/" in name:
            raise InvalidName(f"invalid pool name {name!r}", name)
        if name in self._pools:
            raise DatasetExists(f"pool already exists: {name}", name)
        props = dict(props or {})
        check_creatable(props)
        pool = Pool(name, size)
        txg = self._new_txg()
        fs = Fs(self._new_id(), name, pool, None, txg, self._now(), props)
        fs.enc_root = fs if encrypted(props) else None
        pool.top = fs
        self._pools[name] = pool
        self._fs[name] = fs

    @op(mutating=True)
    def create(self, name: str, props: Mapping[str, str] | None = None) -> None:
        """Create an empty filesystem (`zfs create`, not mounted here).
        Raise DatasetExists, DatasetNotFound (parent), InvalidName."""
        check_name(name, "filesystem")
        props = dict(props or {})
        check_creatable(props)
        if name in self._fs:
            raise DatasetExists(f"dataset already exists: {name}", name)
        if "/" not in name:
            raise DatasetNotFound(f"no such pool: {name}", name)
        parent = self._fs.get(name.rsplit("/", 1)[0])
        if parent is None:
            raise DatasetNotFound(f"parent does not exist: {name}", name)
        fs = Fs(self._new_id(), name, parent.pool, parent, self._new_txg(), self._now(), props)
        fs.enc_root = fs if encrypted(props) else parent.enc_root
        parent.children[fs.comp] = fs
        self._fs[name] = fs

    @op(mutating=True)
    def write(self, name: str, nbytes: int) -> None:
        """Add nbytes of new data to the head of filesystem `name`.
        Raise NoSpace when the pool is full."""
        fs = self._get_fs(name)
        if nbytes <= 0:
            raise ValueError("nbytes must be positive")
        if self._allocated(fs.pool) + nbytes > fs.pool.size - fs.pool.slop:
            raise NoSpace(f"out of space in pool {fs.pool.name}", name)
        self._add_block(fs, nbytes)

    def _add_block(self, fs: Fs, nbytes: int) -> None:
        bid = self._new_id()
        self._blocks[bid] = Block(nbytes, self._new_txg(), fs)
        fs.pool.allocated += nbytes
        fs.added.add(bid)
        fs.owned.add(bid)
        fs.refer += nbytes
        fs.space = None

    @op(mutating=True)
    def delete(self, name: str, nbytes: int) -> None:
        """Drop nbytes of data from the head, newest data first (a partly
        dropped block is rewritten: a new, smaller block born now)."""
        fs = self._get_fs(name)
        self._delete(fs, nbytes)

    @op(mutating=True)
    def delete_all(self, name: str) -> None:
        """Drop all data from the head of filesystem `name`."""
        fs = self._get_fs(name)
        self._delete(fs, fs.refer)

    def _delete(self, fs: Fs, nbytes: int) -> None:
        if nbytes <= 0:
            return
        order = sorted(content(fs), key=lambda b: (self._blocks[b].birth, b), reverse=True)
        drop: list[int] = []
        left = nbytes
        for b in order:
            if left <= 0:
                break
            drop.append(b)
            left -= self._blocks[b].size
        rewrite = -left if left < 0 else 0
        for b in drop:
            if b in fs.added:
                fs.added.discard(b)
            else:
                fs.removed.add(b)
            fs.refer -= self._blocks[b].size
        self._collect(fs)
        if rewrite:
            self._add_block(fs, rewrite)

    # --------------------------------------------------------- protocol

    @op(mutating=False)
    def list(self, root: str, *, snapshots: bool = False, user_props: Sequence[str] = ()) -> list[Dataset]:
        for p in user_props:
            check_user_prop(p)
        check_name(root)
        if "@" in root:
            return [self._row(self._get_snap(root), user_props)]
        top = self._get_fs(root)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # 11,000 fresh dicts would trigger several collections
        try:
            return self._list(top, snapshots, tuple(user_props))
        finally:
            if gc_was_enabled:
                gc.enable()

    @op(mutating=False)
    def exists(self, name: str) -> bool:
        return name in self._fs or name in self._snaps

    @op(mutating=True)
    def snapshot(self, names: Iterable[str], props: Mapping[str, str] | None = None) -> None:
        names = list(names)
        props = dict(props or {})
        for n in names:
            check_name(n, "snapshot")
        for k, v in props.items():
            if not is_user_prop(k):
                raise InvalidProperty(f"snapshot properties must be user properties: {k!r}")
            check_user_prop(k, v)
        if not names:
            return
        pools = {pool_of(n) for n in names}
        if len(pools) > 1:
            raise CrossPool("snapshots must all be in the same pool", names[0])
        seen: set[str] = set()
        targets: list[tuple[Fs, str]] = []
        for n in names:
            fsname, _, snapname = n.partition("@")
            if fsname in seen:
                raise DatasetExists(f"more than one snapshot of {fsname} in one call", n)
            seen.add(fsname)
            fs = self._fs.get(fsname)
            if fs is None:
                raise DatasetNotFound(f"dataset does not exist: {fsname}", n)
            if n in self._snaps:
                raise DatasetExists(f"snapshot already exists: {n}", n)
            targets.append((fs, snapname))
        txg = self._new_txg()
        now = self._now()
        for fs, snapname in targets:
            s = Snap(
                self._new_id(), fs, snapname, txg, now,
                frozenset(fs.added), frozenset(fs.removed), fs.refer, dict(props),
            )
            fs.snaps.append(s)
            fs.space = None
            self._snaps[s.name] = s

    @op(mutating=True)
    def clone(self, origin: str, target: str, props: Mapping[str, str] | None = None) -> None:
        check_name(origin)
        if "@" not in origin:
            raise InvalidName(f"clone origin must be a snapshot: {origin}", origin)
        check_name(target)
        if "@" in target:
            raise InvalidName(f"clone target must be a filesystem: {target}", target)
        props = dict(props or {})
        for k, v in props.items():
            check_settable(k, v, snapshot=False)
        snap = self._get_snap(origin)
        if pool_of(target) != pool_of(origin):
            raise CrossPool(f"cannot clone {origin} into another pool: {target}", target)
        if target in self._fs:
            raise DatasetExists(f"dataset already exists: {target}", target)
        parent = self._fs.get(target.rsplit("/", 1)[0]) if "/" in target else None
        if parent is None:
            raise DatasetNotFound(f"parent of {target} does not exist", target)
        fs = Fs(self._new_id(), target, parent.pool, parent, self._new_txg(), self._now(), props)
        fs.origin = snap
        fs.enc_root = snap.fs.enc_root  # a clone uses its origin's key
        fs.refer = snap.refer
        snap.clones.add(fs)
        parent.children[fs.comp] = fs
        self._fs[target] = fs

    @op(mutating=True)
    def promote(self, name: str) -> None:
        clone = self._get_fs(name)
        snap = clone.origin
        if snap is None:
            raise NotAClone(f"not a cloned filesystem: {name}", name)
        ofs = snap.fs
        moving = [s for s in ofs.snaps if s.createtxg <= snap.createtxg]
        for s in moving:
            if clone.snap(s.snapname) is not None:
                raise DatasetExists(
                    f"cannot promote {name}: snapshot name collision with {s.name}", f"{name}@{s.snapname}"
                )
        # Every head and snapshot is a delta against its filesystem's
        # origin; re-express the ones whose origin changes.
        ofs_origin = ofs.origin
        kept = [s for s in ofs.snaps if s.createtxg > snap.createtxg]
        clone.added, clone.removed = rebase(clone.added, clone.removed, snap, up=True)
        for s in clone.snaps:
            s.added, s.removed = (frozenset(x) for x in rebase(s.added, s.removed, snap, up=True))
        ofs.added, ofs.removed = rebase(ofs.added, ofs.removed, snap, up=False)
        for s in kept:
            s.added, s.removed = (frozenset(x) for x in rebase(s.added, s.removed, snap, up=False))
        # The origin snapshot and every older one move to the clone, oldest
        # first (their deltas are against ofs's origin, the clone's new one);
        # their clones keep pointing at the same snapshot objects.
        ofs.snaps = kept
        for s in moving:
            del self._snaps[s.name]
            s.fs = clone
            s.rename()
            self._snaps[s.name] = s
        clone.snaps = moving + clone.snaps
        # Origins swap: the clone takes the origin filesystem's origin, the
        # origin filesystem becomes a clone of the promoted snapshot.
        snap.clones.discard(clone)
        snap.clones.add(ofs)
        if ofs_origin is not None:
            ofs_origin.clones.discard(ofs)
            ofs_origin.clones.add(clone)
        clone.origin = ofs_origin
        ofs.origin = snap
        # OpenZFS (dsl_dataset_promote_crypt_sync): when the origin was the
        # encryption root, the promoted clone becomes the root of every
        # filesystem that had the origin as its root (its key properties too).
        if ofs.enc_root is ofs:
            for key in KEY_PROPS:
                if key in ofs.props:
                    clone.props[key] = ofs.props.pop(key)
            for f in self._fs.values():
                if f.enc_root is ofs:
                    f.enc_root = clone
        # The blocks those snapshots hold are now charged to the clone.
        for b in [b for b in ofs.owned if self._blocks[b].birth <= snap.createtxg]:
            ofs.owned.discard(b)
            clone.owned.add(b)
            self._blocks[b].owner = clone
        ofs.space = None
        clone.space = None

    @op(mutating=True)
    def rename(self, old: str, new: str) -> None:
        check_name(old)
        check_name(new)
        if "@" in old:
            if "@" not in new:
                raise InvalidName(f"a snapshot can only be renamed to a snapshot: {new}", new)
            if old.split("@", 1)[0] != new.split("@", 1)[0]:
                raise InvalidName(f"snapshots must be part of the same dataset: {old} -> {new}", new)
            snap = self._get_snap(old)
            if new in self._snaps:
                raise DatasetExists(f"snapshot already exists: {new}", new)
            del self._snaps[old]
            snap.snapname = new.split("@", 1)[1]
            snap.rename()
            self._snaps[new] = snap
            return
        if "@" in new:
            raise InvalidName(f"a filesystem can only be renamed to a filesystem: {new}", new)
        fs = self._get_fs(old)
        if fs.parent is None:
            raise InvalidName(f"cannot rename the pool's top filesystem: {old}", old)
        if pool_of(new) != pool_of(old):
            raise CrossPool(f"cannot rename to a different pool: {old} -> {new}", new)
        if new in self._fs:
            raise DatasetExists(f"dataset already exists: {new}", new)
        if new.startswith(old + "/"):
            raise InvalidName(f"cannot rename {old} to a descendant of itself", new)
        parent = self._fs.get(new.rsplit("/", 1)[0]) if "/" in new else None
        if parent is None:
            raise DatasetNotFound(f"parent of {new} does not exist", new)
        # OpenZFS (measured on 2.3.2): an encrypted filesystem that is not
        # its encryption root moves only within that root; an unencrypted
        # one may go under an encrypted parent and stays unencrypted.
        if fs.enc_root not in (None, fs) and parent.enc_root is not fs.enc_root:
            raise PermissionDenied(f"cannot move encrypted child {old} outside of its encryption root", new)
        del fs.parent.children[fs.comp]
        self._rename_tree(fs, new)
        fs.parent = parent
        parent.children[fs.comp] = fs

    @op(mutating=True)
    def destroy(self, name: str) -> None:
        obj = self._get_any(name)
        if isinstance(obj, Snap):
            if obj.holds:
                raise SnapshotHeld(f"snapshot is held: {name} ({', '.join(sorted(obj.holds))})", name)
            if obj.clones:
                clones = ", ".join(sorted(c.name for c in obj.clones))
                raise HasDependents(f"snapshot has dependent clones: {name} ({clones})", name)
            fs = obj.fs
            fs.snaps.remove(obj)
            del self._snaps[name]
            self._collect(fs)
            return
        fs = obj
        if fs.parent is None:
            raise InvalidName(f"cannot destroy the pool's top filesystem: {name}", name)
        if fs.mount is not None:
            raise DatasetBusy(f"dataset is mounted at {fs.mount}: {name}", name)
        if fs.snaps:
            raise HasDependents(f"filesystem has snapshots: {name}", name, _errno.EBUSY)
        if fs.children:
            raise HasDependents(f"filesystem has children: {name}", name, _errno.EEXIST)
        if fs.origin is not None:
            fs.origin.clones.discard(fs)
        del fs.parent.children[fs.comp]
        del self._fs[name]
        if fs.pool.bootfs is fs:
            fs.pool.bootfs = None
        fs.added = set()
        self._collect(fs)

    @op(mutating=False)
    def destroy_preview(self, names: Sequence[str]) -> int:
        objs = [self._get_any(n) for n in names]
        gone_fs = {id(o) for o in objs if isinstance(o, Fs)}
        gone_snap = {id(o) for o in objs if isinstance(o, Snap)}
        affected: dict[int, Fs] = {}
        for o in objs:
            fs = o if isinstance(o, Fs) else o.fs
            affected[id(fs)] = fs
        freed = 0
        for fs in affected.values():
            # What _collect would free once these are gone: fs-owned blocks
            # nothing left of fs (its head, its other snapshots) references.
            keep: set[int] = set() if id(fs) in gone_fs else set(fs.added)
            for s in fs.snaps:
                if id(s) not in gone_snap:
                    keep |= s.added
            for b in fs.owned - keep:
                freed += self._blocks[b].size
        return freed

    @op(mutating=True)
    def hold(self, snapshot: str, tag: str) -> None:
        snap = self._get_snap(snapshot)
        _check_tag(tag)
        if tag in snap.holds:
            raise DatasetExists(f"tag {tag!r} is already held on {snapshot}", snapshot)
        snap.holds.add(tag)

    @op(mutating=True)
    def release(self, snapshot: str, tag: str) -> None:
        snap = self._get_snap(snapshot)
        if tag not in snap.holds:
            raise DatasetNotFound(f"no hold {tag!r} on {snapshot}", snapshot)
        snap.holds.discard(tag)

    @op(mutating=False)
    def holds(self, snapshot: str) -> frozenset[str]:
        return frozenset(self._get_snap(snapshot).holds)

    @op(mutating=False)
    def get_props(self, name: str, props: Sequence[str]) -> dict[str, str]:
        obj = self._get_any(name)
        for p in props:
            check_gettable(p)
        out: dict[str, str] = {}
        row: dict[str, str] | None = None  # the native row, computed once (listing.py)
        for p in props:
            value: object = None
            if is_user_prop(p):
                value = self._user_prop(obj, p)
            elif p in ("name", "guid"):
                value = obj.name if p == "name" else obj.id
            elif p == "available":  # the pool's: no quotas or reservations in the fake
                value = 0 if isinstance(obj, Snap) else max(0, obj.pool.size - obj.pool.slop - self._allocated(obj.pool))
            elif isinstance(obj, Snap) and p in ("clones", "userrefs"):
                value = ",".join(sorted(c.name for c in obj.clones)) if p == "clones" else len(obj.holds)
            elif p in ROW_PROPS or p == "encryption":
                row = row if row is not None else self._native_row(obj)
                value = row.get(p, "off" if p == "encryption" else None)
            elif isinstance(obj, Fs) and p in INHERITED_DEFAULTS:
                value = self._inherited(obj, p)
            if value is not None and value != "":
                out[p] = str(value)
        return out

    # -- diff: the fake has no files, only blocks; each block stands for
    # one file `/data-<block id>` (what the contract suite's real helper
    # writes: one new file per write), so a write is an added file and a
    # delete a removed one.

    def _lineage(self, snapshot: str, target: str) -> tuple[Snap, Fs | Snap]:
        snap = self._get_snap(snapshot)
        later: Fs | Snap = self._get_snap(target) if "@" in target else self._get_fs(target)
        fs = later.fs if isinstance(later, Snap) else later
        if isinstance(later, Snap) and later.fs is snap.fs and later.createtxg > snap.createtxg:
            return snap, later
        f: Fs | None = fs
        # The newest state of f the target descends from: its head (None),
        # or, up the origin chain, the origin snapshot itself (inclusive).
        at: int | None = later.createtxg + 0 if isinstance(later, Snap) else None
        inclusive = False
        while f is not None:
            if f is snap.fs and (at is None or at > snap.createtxg or (inclusive and at == snap.createtxg)):
                return snap, later
            if f.origin is None:
                break
            at, inclusive = f.origin.createtxg, True
            f = f.origin.fs
        raise InvalidName(f"cannot diff '{snapshot}' and '{target}': not an earlier snapshot from the same fs", target)

    @op(mutating=False)
    def diff(self, snapshot: str, target: str) -> list[DiffEntry]:
        snap, later = self._lineage(snapshot, target)
        fs = later.fs if isinstance(later, Snap) else later
        for f in (snap.fs, fs):
            if f.mount is None:
                raise NotMounted(f"cannot diff '{target}': Cannot diff an unmounted snapshot ({f.name})", target)
        before, after = content(snap), content(later)
        entries = [DiffEntry("-", "F", f"/data-{b}") for b in sorted(before - after)]
        entries += [DiffEntry("+", "F", f"/data-{b}") for b in sorted(after - before)]
        return entries

    @op(mutating=False)
    def written_since(self, snapshot: str, target: str) -> int:
        snap, later = self._lineage(snapshot, target)
        return sum(self._blocks[b].size for b in content(later) - content(snap))

    @op(mutating=True)
    def set_props(self, name: str, props: Mapping[str, str]) -> None:
        obj = self._get_any(name)
        for k, v in props.items():
            check_settable(k, v, snapshot=isinstance(obj, Snap))
        moves = self._remounts(obj, props) if isinstance(obj, Fs) and "mountpoint" in props else []
        obj.props.update(props)
        for fs, path in moves:
            if fs.mount is not None:
                del self._mounts[fs.mount]
            fs.mount = path
            if path is not None:
                self._mounts[path] = fs

    @op(mutating=True)
    def inherit(self, name: str, prop: str) -> None:
        obj = self._get_any(name)
        if is_user_prop(prop):
            check_user_prop(prop)
        elif prop in ("mountpoint",) or prop in INHERITED_DEFAULTS:
            if isinstance(obj, Snap):
                raise InvalidProperty(f"property {prop!r} does not apply to snapshots", name)
        elif prop in ("canmount",):
            raise InvalidProperty(f"property {prop!r} cannot be inherited", name)
        else:
            check_gettable(prop)
            raise InvalidProperty(f"property {prop!r} is read-only", name)
        obj.props.pop(prop, None)

    @op(mutating=False)
    def pool_get(self, pool: str, prop: str) -> str | None:
        p = self._get_pool(pool)
        if prop not in POOL_PROPS:
            raise InvalidProperty(f"invalid pool property {prop!r}", pool)
        if prop == "bootfs":
            return p.bootfs.name if p.bootfs else None
        if prop == "name":
            return p.name
        if prop == "health":
            return "ONLINE"
        allocated = self._allocated(p)
        if prop == "size":
            return str(p.size)
        if prop == "allocated":
            return str(allocated)
        if prop == "free":
            return str(p.size - allocated)
        return p.props.get(prop)

    @op(mutating=True)
    def pool_set(self, pool: str, prop: str, value: str) -> None:
        p = self._get_pool(pool)
        if prop not in POOL_PROPS:
            raise InvalidProperty(f"invalid pool property {prop!r}", pool)
        if prop not in POOL_SETTABLE:
            raise InvalidProperty(f"pool property {prop!r} is read-only", pool)
        if prop == "bootfs":
            if value in ("", "-"):
                p.bootfs = None
                return
            check_name(value)
            if "@" in value or pool_of(value) != pool:
                raise InvalidProperty(f"bootfs must be a filesystem of pool {pool}: {value}", pool)
            p.bootfs = self._get_fs(value)
            return
        p.props[prop] = value

    # --------------------------------------------------- test machinery

    def fail_next(self, op: str, error: BaseException) -> None:
        """Make the next call of public method `op` raise `error` without
        changing anything. Calls queue up: fail_next twice, fail twice.
        `error` is a ZfsError class of zfs.base (or an OSError), so the
        fault survives the JSON store: a CLI run on the saved state meets it.
        Raise ValueError for an unknown op, TypeError for another error."""
        from .store import fault_to_dict

        method = getattr(type(self), op, None)
        if method is None or not hasattr(method, "_fake_op"):
            raise ValueError(f"FakeZfs has no operation {op!r}")
        if not isinstance(error, BaseException):
            raise TypeError("error must be an exception instance")
        fault_to_dict(error)
        self._faults.setdefault(op, []).append(error)
        if self.autosave is not None:
            self.save(self.autosave)

def open_fake(path: str | Path, **kwargs) -> FakeZfs:
    """Return a FakeZfs loaded from `path` that saves after every mutating
    call (what `BOOTENV_ZFS=fake:/path/state.json` gives the CLI). Raise
    ZfsUnavailable if there is no state there."""
    path = Path(path)
    if not path.exists():
        raise ZfsUnavailable(f"no fake ZFS state at {path} (create one: python -m bootenv.zfs.fake init {path} ...)")
    fake = FakeZfs.load(path, **kwargs)
    fake.autosave = path
    return fake


def _check_tag(tag: str) -> None:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_HOLD_TAG:
        raise InvalidName(f"invalid hold tag {tag!r}")
