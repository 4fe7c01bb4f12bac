"""The in-memory ZFS's objects and its space accounting.

Data is blocks: each has a size, the txg it was born in and the filesystem
that owns (is charged for) it. A filesystem's head references a set of
blocks; a snapshot freezes the head's set. A clone's head starts with its
origin snapshot's blocks, which stay owned by the origin filesystem; promote
hands the origin filesystem's blocks born up to the origin snapshot over to
the clone. A block nothing references is freed.

A head or snapshot of filesystem F is stored as a delta against F's origin
snapshot (empty for a non-clone): `added` (blocks it has that the origin
has not) and `removed` (origin blocks it dropped). `added` holds exactly the
F-owned blocks it references, so cloning and snapshotting cost O(F's own
data), never O(history), and accounting never walks a chain of clones:
  referenced       bytes the head (or snapshot) references (kept as a sum)
  usedbydataset    bytes of head.added
  usedbysnapshots  F-owned blocks the head dropped that a snapshot of F keeps
  snapshot used    F-owned blocks only that snapshot references
  usedbychildren   the sum of the children's `used`
  used             usedbydataset + usedbysnapshots + usedbychildren
Right after a snapshot usedbysnapshots is 0: the head still holds it all.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Block:
    __slots__ = ("size", "birth", "owner")

    def __init__(self, size: int, birth: int, owner: "Fs"):
        self.size = size
        self.birth = birth
        self.owner = owner


class Pool:
    __slots__ = ("name", "props", "bootfs", "top", "size", "allocated")

    def __init__(self, name: str, size: int):
        self.name = name
        self.props: dict[str, str] = {}
        self.bootfs: Fs | None = None
        self.top: Fs | None = None
        self.size = size
        self.allocated = 0

    @property
    def slop(self) -> int:
        """The space OpenZFS keeps back from datasets (spa_get_slop_space):
        1/32 of the pool, at least 128 MiB (at most half the pool), at most
        128 GiB. `zpool get free` counts it, `available` and writes do not."""
        mib = 1024 * 1024
        return max(min(self.size >> 5, 128 * 1024 * mib), min(self.size >> 1, 128 * mib))


@dataclass(eq=False)
class Snap:
    id: int
    fs: "Fs"
    snapname: str
    createtxg: int
    creation: int
    added: frozenset[int]
    removed: frozenset[int]
    refer: int
    props: dict[str, str] = field(default_factory=dict)
    holds: set[str] = field(default_factory=set)
    clones: set["Fs"] = field(default_factory=set)
    name: str = ""
    # Listing caches: the immutable numbers as strings, the last row built.
    txg_s: str = ""
    creation_s: str = ""
    row: tuple | None = None

    def __post_init__(self) -> None:
        self.rename()
        self.txg_s = str(self.createtxg)
        self.creation_s = str(self.creation)

    def rename(self) -> None:
        self.name = f"{self.fs.name}@{self.snapname}"


@dataclass(eq=False)
class Fs:
    id: int
    name: str
    pool: Pool
    parent: "Fs | None"
    createtxg: int
    creation: int
    props: dict[str, str] = field(default_factory=dict)
    origin: Snap | None = None
    added: set[int] = field(default_factory=set)  # head delta against origin
    removed: set[int] = field(default_factory=set)
    owned: set[int] = field(default_factory=set)
    refer: int = 0
    children: dict[str, "Fs"] = field(default_factory=dict)  # last component -> child
    snaps: list[Snap] = field(default_factory=list)  # createtxg order
    mount: str | None = None
    # The filesystem whose key this one uses (None: unencrypted). Fixed at
    # creation as OpenZFS records it in the dataset's crypto key object
    # (itself with encryption on; else its parent's, a clone its origin's),
    # changed only by promote: never worked out by walking the lineage,
    # which promotions can make circular.
    enc_root: "Fs | None" = None
    # (usedbydataset, usedbysnapshots, {snapshot: used}); None when stale.
    space: tuple[int, int, dict[Snap, int]] | None = None
    txg_s: str = ""
    creation_s: str = ""

    def __post_init__(self) -> None:
        self.txg_s = str(self.createtxg)
        self.creation_s = str(self.creation)

    @property
    def comp(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def snap(self, snapname: str) -> Snap | None:
        for s in self.snaps:
            if s.snapname == snapname:
                return s
        return None


def own_space(fs: Fs, blocks: dict[int, Block]) -> tuple[int, int, dict[Snap, int]]:
    """Given a filesystem, return (usedbydataset, usedbysnapshots,
    {snapshot: used}) without its children, in one pass over its deltas."""
    head = fs.added
    ubd = 0
    for b in head:
        ubd += blocks[b].size
    count: dict[int, int] = {}
    for s in fs.snaps:
        for b in s.added:
            if b not in head:
                count[b] = count.get(b, 0) + 1
    ubs = 0
    for b in count:
        ubs += blocks[b].size
    snap_used: dict[Snap, int] = {}
    for s in fs.snaps:
        u = 0
        if count:
            for b in s.added:
                if count.get(b) == 1:
                    u += blocks[b].size
        snap_used[s] = u
    return ubd, ubs, snap_used


def content(obj: "Fs | Snap") -> set[int]:
    """Every block the head (or snapshot) references: O(clone chain)."""
    fs = obj if isinstance(obj, Fs) else obj.fs
    base = content(fs.origin) if fs.origin is not None else set()
    return (base - obj.removed) | obj.added


def rebase(added: set[int] | frozenset[int], removed: set[int] | frozenset[int], onto: Snap, *, up: bool) -> tuple[set[int], set[int]]:
    """Re-express a delta for promote. `up`: the delta is against snapshot
    `onto`; return it against onto's own base. Otherwise the delta and
    `onto` are against the same base and `onto` is older in its lineage;
    return the delta against `onto`."""
    if up:
        return (set(onto.added) - removed) | added, set(onto.removed) | (removed - onto.added)
    return set(added) - onto.added, (set(onto.added) - added) | (removed - onto.removed)


def cached_space(fs: Fs, blocks: dict[int, Block]) -> tuple[int, int, dict[Snap, int]]:
    if fs.space is None:
        fs.space = own_space(fs, blocks)
    return fs.space


def subtree(fs: Fs) -> list[Fs]:
    """Return fs and all its descendants, parents before children."""
    out = [fs]
    i = 0
    while i < len(out):
        out.extend(out[i].children.values())
        i += 1
    return out


def used_by_children(tree: list[Fs], blocks: dict[int, Block]) -> dict[int, int]:
    """Given subtree(fs), return {id(fs): usedbychildren} for every member,
    children before parents so it is one pass."""
    ubc: dict[int, int] = {id(f): 0 for f in tree}
    root = tree[0]
    for f in reversed(tree):
        ubd, ubs, _ = cached_space(f, blocks)
        if f is not root:
            ubc[id(f.parent)] += ubd + ubs + ubc[id(f)]
    return ubc
