"""Invariants of the in-memory ZFS: the state must be one OpenZFS could be
in. `FakeZfs.check_invariants()` runs this; strict mode runs it after
every call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .space import own_space, subtree

if TYPE_CHECKING:
    from .state import FakeState as FakeZfs


def _fail(msg: str) -> None:
    raise AssertionError(f"fake ZFS invariant broken: {msg}")


def check_invariants(z: "FakeZfs") -> None:
    """Raise AssertionError with a clear message unless every structural,
    ordering and space invariant holds."""
    clones_of = _check_filesystems(z)
    _check_encryption_roots(z)
    _check_snapshots_and_mounts(z, clones_of)
    _check_blocks(z)
    _check_pools(z)


def _check_encryption_roots(z: "FakeZfs") -> None:
    """Every encrypted filesystem's root exists, is its own root and holds
    the key properties, which no other filesystem has. (Nothing ties a
    root to the parent's: an unencrypted clone may live under an encrypted
    parent, and a promoted clone keeps the root it had.)"""
    from .names import KEY_PROPS

    for name, f in z._fs.items():
        root = f.enc_root
        if root is not None and (z._fs.get(root.name) is not root or root.enc_root is not root):
            _fail(f"{name}: its encryption root {root.name} is not a live encryption root")
        has_keys = any(k in f.props for k in KEY_PROPS)
        if has_keys != (root is f):
            _fail(f"{name}: key properties {'without' if has_keys else 'on'} an encryption root")


def _check_filesystems(z: "FakeZfs") -> dict[int, set[int]]:
    """Names, parents and children, snapshot order, origins, mounts. Return
    origin snapshot id -> the ids of its clones, as the clones say."""
    clones_of: dict[int, set[int]] = {}
    for name, f in z._fs.items():
        if f.name != name:
            _fail(f"filesystem indexed as {name} is named {f.name}")
        if f.pool.name != name.split("/", 1)[0]:
            _fail(f"{name} belongs to pool {f.pool.name}")
        if f.parent is None:
            if f.pool.top is not f or "/" in name:
                _fail(f"{name} has no parent but is not its pool's top filesystem")
        else:
            if z._fs.get(f.parent.name) is not f.parent:
                _fail(f"parent {f.parent.name} of {name} does not exist")
            if f.parent.name + "/" + f.comp != name or f.parent.children.get(f.comp) is not f:
                _fail(f"{name} is not linked under its parent {f.parent.name}")
        for comp, c in f.children.items():
            if c.parent is not f or z._fs.get(c.name) is not c:
                _fail(f"child {comp} of {name} is dangling")
        if f.createtxg > z.txg:
            _fail(f"{name} createtxg {f.createtxg} is in the future (txg {z.txg})")
        last = f.createtxg
        for s in f.snaps:
            if s.fs is not f:
                _fail(f"snapshot {s.name} is listed under {name} but belongs to {s.fs.name}")
            if z._snaps.get(s.name) is not s or s.name != f"{name}@{s.snapname}":
                _fail(f"snapshot {s.name} of {name} is not indexed under its name")
            # (Snapshots moved here by promote may be older than f itself.)
            if s.createtxg <= last and s is not f.snaps[0]:
                _fail(f"snapshots of {name} are not in increasing createtxg order at {s.name}")
            last = s.createtxg
            if f.origin is not None and s.createtxg <= f.origin.createtxg:
                _fail(f"{s.name} is older than the origin {f.origin.name} of its filesystem")
            if s.createtxg > z.txg:
                _fail(f"{s.name} createtxg is in the future")
        if f.origin is not None:
            o = f.origin
            if z._snaps.get(o.name) is not o:
                _fail(f"origin {o.name} of {name} does not exist")
            if o.fs is f:
                _fail(f"{name} is its own origin's filesystem")
            if o.fs.pool is not f.pool:
                _fail(f"origin {o.name} of {name} is in another pool")
            clones_of.setdefault(id(o), set()).add(id(f))
        if f.mount is not None and z._mounts.get(f.mount) is not f:
            _fail(f"{name} thinks it is mounted at {f.mount} but the mount table disagrees")
    return clones_of


def _check_snapshots_and_mounts(z: "FakeZfs", clones_of: dict[int, set[int]]) -> None:
    for name, s in z._snaps.items():
        if z._fs.get(s.fs.name) is not s.fs or s not in s.fs.snaps:
            _fail(f"snapshot {name} belongs to a filesystem that does not exist")
        if {id(c) for c in s.clones} != clones_of.get(id(s), set()):
            _fail(f"clone list of {name} disagrees with the clones' origins")
    for path, f in z._mounts.items():
        if f.mount != path or z._fs.get(f.name) is not f:
            _fail(f"mount table entry {path} -> {f.name} is stale")


class _References:
    """What a head or snapshot references (memoised per snapshot), checking
    each delta against its origin on the way."""

    def __init__(self) -> None:
        self.memo: dict[int, set[int]] = {}

    def __call__(self, obj) -> set[int]:
        """What a head or snapshot references (self.memoised per snapshot)."""
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        fs = obj if obj.__class__.__name__ == "Fs" else obj.fs
        base = self(fs.origin) if fs.origin is not None else set()
        if obj.removed - base:
            _fail(f"{getattr(obj, 'name')} drops blocks its origin does not have")
        if obj.added & base:
            _fail(f"{getattr(obj, 'name')} adds blocks its origin already has")
        result = (base - obj.removed) | obj.added
        if obj is not fs:
            self.memo[key] = result
        return result


def _check_blocks(z: "FakeZfs") -> None:
    """Every block a head or snapshot references exists; each live block is
    charged to exactly one filesystem, whose head or snapshots reference
    it; referenced sums agree."""
    full = _References()
    charged: dict[int, str] = {}
    for f in z._fs.values():
        for obj in [f, *f.snaps]:
            blocks = full(obj)
            missing = [b for b in blocks if b not in z._blocks]
            if missing:
                _fail(f"{obj.name} references freed block {missing[0]}")
            if obj.refer != sum(z._blocks[b].size for b in blocks):
                _fail(f"{obj.name} referenced {obj.refer} disagrees with its blocks")
            if not obj.added <= f.owned:
                _fail(f"{obj.name} adds blocks not charged to {f.name}")
        keep = set(f.added)
        for sn in f.snaps:
            keep |= sn.added
        if f.owned != keep:
            _fail(f"{f.name}: charged blocks {sorted(f.owned ^ keep)[:5]} are not (or not only) its own data")
        for b in f.owned:
            if b in charged:
                _fail(f"block {b} is charged to both {charged[b]} and {f.name}")
            charged[b] = f.name
            blk = z._blocks.get(b)
            if blk is None or blk.owner is not f:
                _fail(f"{f.name} is charged for block {b} it does not own")
            if blk.birth > z.txg:
                _fail(f"block {b} was born in the future")
        if f.space is not None and f.space != own_space(f, z._blocks):
            _fail(f"cached space of {f.name} is stale")
    if set(charged) != set(z._blocks):
        _fail(f"blocks {sorted(set(z._blocks) - set(charged))[:5]} are charged to nobody")


def _check_pools(z: "FakeZfs") -> None:
    """Every pool's top `used` equals its live block bytes; bootfs exists."""
    for pool in z._pools.values():
        if pool.top is None or z._fs.get(pool.top.name) is not pool.top:
            _fail(f"pool {pool.name} lost its top filesystem")
        total = sum(b.size for b in z._blocks.values() if b.owner.pool is pool)
        if total != pool.allocated:
            _fail(f"pool {pool.name}: allocated {pool.allocated} != live blocks {total}")
        used = sum(sum(own_space(f, z._blocks)[:2]) for f in subtree(pool.top))
        if used != total:
            _fail(f"pool {pool.name}: used {used} != allocated {total}")
        if pool.bootfs is not None and z._fs.get(pool.bootfs.name) is not pool.bootfs:
            _fail(f"bootfs of {pool.name} does not exist")
        if pool.bootfs is not None and pool.bootfs.pool is not pool:
            _fail(f"bootfs of {pool.name} is in another pool")
