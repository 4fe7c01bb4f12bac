"""Invariants of the in-memory ZFS: the state must be one OpenZFS could be
in. `FakeZfs.check_invariants()` runs this; strict mode runs it after
every call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fake_space import own_space, subtree

if TYPE_CHECKING:
    from .fake import FakeZfs


def _fail(msg: str) -> None:
    raise AssertionError(f"fake ZFS invariant broken: {msg}")


def check_invariants(z: "FakeZfs") -> None:
    """Raise AssertionError with a clear message unless every structural,
    ordering and space invariant holds."""
    refs: dict[int, int] = {}
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
            for b in s.blocks:
                refs[b] = refs.get(b, 0) + 1
            if s.refer != sum(z._blocks[b].size for b in s.blocks if b in z._blocks):
                _fail(f"{s.name} referenced is inconsistent with its blocks")
        if f.origin is not None:
            o = f.origin
            if z._snaps.get(o.name) is not o:
                _fail(f"origin {o.name} of {name} does not exist")
            if o.fs is f:
                _fail(f"{name} is its own origin's filesystem")
            if o.fs.pool is not f.pool:
                _fail(f"origin {o.name} of {name} is in another pool")
            clones_of.setdefault(id(o), set()).add(id(f))
        for b in f.head:
            refs[b] = refs.get(b, 0) + 1
        if f.refer != sum(z._blocks[b].size for b in f.head if b in z._blocks):
            _fail(f"{name} referenced is inconsistent with its head")
        if f.mount is not None and z._mounts.get(f.mount) is not f:
            _fail(f"{name} thinks it is mounted at {f.mount} but the mount table disagrees")
    for name, s in z._snaps.items():
        if z._fs.get(s.fs.name) is not s.fs or s not in s.fs.snaps:
            _fail(f"snapshot {name} belongs to a filesystem that does not exist")
        if {id(c) for c in s.clones} != clones_of.get(id(s), set()):
            _fail(f"clone list of {name} disagrees with the clones' origins")
    for path, f in z._mounts.items():
        if f.mount != path or z._fs.get(f.name) is not f:
            _fail(f"mount table entry {path} -> {f.name} is stale")
    # Blocks: reference counts, ownership, liveness.
    if refs != z._refs:
        _fail("block reference counts are out of date")
    for bid, blk in z._blocks.items():
        if bid not in refs:
            _fail(f"block {bid} is referenced by nothing but not freed")
        if z._fs.get(blk.owner.name) is not blk.owner or bid not in blk.owner.owned:
            _fail(f"block {bid} has a stale owner {blk.owner.name}")
        if blk.birth > z.txg:
            _fail(f"block {bid} was born in the future")
    for bid in refs:
        if bid not in z._blocks:
            _fail(f"block {bid} is referenced but does not exist")
    for f in z._fs.values():
        keep = set(f.head)
        for s in f.snaps:
            keep |= s.blocks
        for b in f.owned:
            if z._blocks.get(b) is None or z._blocks[b].owner is not f:
                _fail(f"{f.name} owns block {b} it is not charged for")
            if b not in keep:
                _fail(f"block {b} charged to {f.name} is held by neither its head nor its snapshots")
        # Cached space must equal a fresh computation.
        if f.space is not None and f.space != own_space(f, z._blocks):
            _fail(f"cached space of {f.name} is stale")
    # Space sums: every pool's top `used` equals its live block bytes.
    for pool in z._pools.values():
        if pool.top is None or z._fs.get(pool.top.name) is not pool.top:
            _fail(f"pool {pool.name} lost its top filesystem")
        total = sum(b.size for b in z._blocks.values() if b.owner.pool is pool)
        used = sum(sum(own_space(f, z._blocks)[:2]) for f in subtree(pool.top))
        if used != total:
            _fail(f"pool {pool.name}: used {used} != allocated {total}")
        if pool.bootfs is not None and z._fs.get(pool.bootfs.name) is not pool.bootfs:
            _fail(f"bootfs of {pool.name} does not exist")
        if pool.bootfs is not None and pool.bootfs.pool is not pool:
            _fail(f"bootfs of {pool.name} is in another pool")
