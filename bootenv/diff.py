"""What changed between two BEs: packages (their manifests, compared the
Debian way) and files (every dataset of the BE).

Files come from `zfs diff` where the two share a lineage: one BE's
dataset is a clone of a snapshot of the other's, and one side has not
been written since that snapshot (it *is* the snapshot, so the diff from
the snapshot to the other side is the diff between the two). Otherwise
both are mounted read-only and their trees compared (type, size, mode,
owner, mtime, link target); a file removed on one side and added on the
other with the same size, mode, owner, mtime and bytes, the only such
pair, is a rename there (unrelated trees share no object numbers, which
is how zfs diff tells one).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Optional

from .apt.manifest import PackageChange, compare
from .errors import OperationFailed, UsageError
from .zfs.base import DiffEntry, InvalidName, ZfsError

CHANGES = ("added", "removed", "modified", "renamed")
_FROM_ZFS = {"+": "added", "-": "removed", "M": "modified", "R": "renamed"}
_INVERSE = {"added": "removed", "removed": "added", "modified": "modified", "renamed": "renamed"}


@dataclass(frozen=True)
class FileChange:
    change: str  # one of CHANGES
    path: str  # inside the BE (a child dataset's files under its mount path)
    new_path: Optional[str] = None  # renamed: where to
    kind: str = "F"  # zfs diff's type letter


@dataclass
class DatasetDiff:
    rel: str  # the dataset below the BE's top ("" for the top)
    method: str  # how: "zfs diff SNAP TARGET", "tree", "only in A"...
    changes: list[FileChange] = field(default_factory=list)
    written: int = 0  # bytes: written@ for zfs diff, sizes for a tree


@dataclass
class BeDiff:
    old: str
    new: str
    packages: Optional[list[PackageChange]]  # None: a side has no dpkg status
    why_no_packages: str = ""
    datasets: Optional[list[DatasetDiff]] = None  # None unless --files

    def files(self) -> list[FileChange]:
        return [c for d in self.datasets or [] for c in d.changes]

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("upgraded", "downgraded", "added", "removed")}
        for c in self.packages or []:
            out[c.kind] += 1
        return out

    def file_counts(self) -> dict[str, int]:
        out = {k: 0 for k in CHANGES}
        for c in self.files():
            out[c.change] += 1
        return out

    def written(self) -> int:
        return sum(d.written for d in self.datasets or [])


def diff_bes(engine, old: str, new: str, *, files: bool = False) -> BeDiff:
    """Compare BE `old` with BE `new` (what going from old to new
    changes). Raise BeNotFound, UsageError, OperationFailed."""
    if old == new:
        raise UsageError(f"{old} compared with itself: name two boot environments")
    scan = engine.scan()
    engine.get(old, scan)
    engine.get(new, scan)
    result = BeDiff(old, new, None)
    a, b = engine.manifest(old, scan), engine.manifest(new, scan)
    if a is None or b is None:
        result.why_no_packages = f"{old if a is None else new} has no dpkg status"
    else:
        result.packages = compare(a, b)
    if files:
        result.datasets = _file_diffs(engine, scan, old, new)
    return result


def _file_diffs(engine, scan, old: str, new: str) -> list[DatasetDiff]:
    """Both BEs mounted read-only for the whole comparison (zfs diff reads
    through the snapshot's filesystem and the target's; a tree comparison
    walks both)."""
    with engine.mounted_readonly(old, scan) as root_a, engine.mounted_readonly(new, scan) as root_b:
        return _compare(engine, scan, old, new, root_a, root_b)


def _compare(engine, scan, old: str, new: str, root_a: str, root_b: str) -> list[DatasetDiff]:
    top_a, top_b = engine.dataset_of(old), engine.dataset_of(new)
    rels_a = {ds[len(top_a):]: ds for ds in scan.tree(top_a)}
    rels_b = {ds[len(top_b):]: ds for ds in scan.tree(top_b)}
    out: list[DatasetDiff] = []
    pending_tree: list[str] = []
    for rel in sorted(set(rels_a) | set(rels_b), key=lambda r: (r.count("/"), r)):
        da, db = rels_a.get(rel), rels_b.get(rel)
        if da and db:
            found = _by_lineage(engine, scan, rel, da, db)
            if found is not None:
                out.append(found)
                continue
        pending_tree.append(rel)
    if pending_tree:
        out += _by_tree(engine, scan, old, new, rels_a, rels_b, pending_tree, root_a, root_b)
    return sorted(out, key=lambda d: (d.rel.count("/"), d.rel))


def _common_snapshot(scan, da: str, db: str) -> Optional[str]:
    """The snapshot one dataset was cloned from that belongs to the other."""
    for x, y in ((da, db), (db, da)):
        origin = scan.datasets[y].origin
        if origin and origin.split("@", 1)[0] == x:
            return origin
    return None


def _by_lineage(engine, scan, rel: str, da: str, db: str) -> Optional[DatasetDiff]:
    """zfs diff from the common snapshot to the side that moved on, when
    the other side has not been written since (None: compare trees)."""
    snap = _common_snapshot(scan, da, db)
    if snap is None:
        return None
    try:
        wa, wb = engine.zfs.written_since(snap, da), engine.zfs.written_since(snap, db)
    except InvalidName:
        return None  # not the lineage it looked like: compare the trees
    except ZfsError as exc:
        raise OperationFailed(f"written@{snap}: {exc}") from exc
    # Exactly 0: any write (even a small config edit) on both sides means
    # neither is the snapshot any more. Read-only mounts write nothing.
    if wa == 0:
        moved, inverse = db, False
    elif wb == 0:
        moved, inverse = da, True
    else:
        return None
    be = engine.name_of(moved)
    entries = _zfs_diff(engine, snap, moved)
    prefix = _mount_rel(scan, engine.dataset_of(be), moved)
    changes = fold_replaced([_file_change(e, prefix, inverse) for e in entries])
    return DatasetDiff(rel, f"zfs diff {snap} {moved}" + (" (reversed)" if inverse else ""), changes, wb if not inverse else wa)


def fold_replaced(changes: list[FileChange]) -> list[FileChange]:
    """Given zfs diff's changes, return them with each path that was both
    removed and added (the same type) as one modified file, where the
    removal was. zfs diff follows objects: a file written as a new object
    under the old name (dpkg unpacks NAME.dpkg-new and renames it over
    NAME; apt's caches and most editors do the same) is the old object
    removed and a new one added, which to a reader is a changed file."""
    removed = {(c.path, c.kind) for c in changes if c.change == "removed"}
    replaced = {(c.path, c.kind) for c in changes if c.change == "added"} & removed
    out = []
    for c in changes:
        if (c.path, c.kind) not in replaced:
            out.append(c)
        elif c.change == "removed":
            out.append(FileChange("modified", c.path, None, c.kind))
    return out


def _zfs_diff(engine, snap: str, target: str) -> list[DiffEntry]:
    try:
        return engine.zfs.diff(snap, target)
    except ZfsError as exc:
        raise OperationFailed(f"zfs diff {snap} {target}: {exc}") from exc


def _mount_rel(scan, top: str, ds: str) -> str:
    """Where dataset `ds` of a BE sits inside it ("" for the top, /var ...)."""
    from .engine import Engine

    path = Engine._child_path("/", scan.datasets[top].props.get("mountpoint", "/"), scan.datasets[ds].props.get("mountpoint", ""), ds, top)
    return "" if path == "/" else path


def _file_change(e: DiffEntry, prefix: str, inverse: bool) -> FileChange:
    change = _FROM_ZFS[e.change]
    path = prefix + e.path if e.path != "/" else (prefix or "/")
    new = prefix + e.new_path if e.new_path else None
    if inverse:
        change = _INVERSE[change]
        if new is not None:
            path, new = new, path
    return FileChange(change, path, new, e.kind)


# ---------------------------------------------------------------- trees


def _by_tree(engine, scan, old: str, new: str, rels_a: dict, rels_b: dict, rels: list[str], root_a: str, root_b: str) -> list[DatasetDiff]:
    prefix = getattr(engine.manifests, "prefix", "") if engine.manifests is not None else ""
    out = []
    for rel in rels:
        da, db = rels_a.get(rel), rels_b.get(rel)
        pa = _mount_rel(scan, engine.dataset_of(old), da) if da else None
        pb = _mount_rel(scan, engine.dataset_of(new), db) if db else None
        # Where bootenv mounts BEs is nobody's content (the running BE's
        # tree would hold the other side: on a real system /run is a
        # filesystem of its own anyway).
        skip = engine.mount_base if not (pa or pb) else None
        tree_a = _walk(prefix + os.path.join(root_a, (pa or "").lstrip("/")), skip) if da else {}
        tree_b = _walk(prefix + os.path.join(root_b, (pb or "").lstrip("/")), skip) if db else {}
        inside = pb if pb is not None else pa or ""
        d = DatasetDiff(rel, "tree" if da and db else (f"only in {old}" if da else f"only in {new}"))
        base_a = prefix + os.path.join(root_a, (pa or "").lstrip("/"))
        base_b = prefix + os.path.join(root_b, (pb or "").lstrip("/"))
        moved = _renames(tree_a, tree_b, base_a, base_b) if da and db else {}
        gone = set(moved.values())

        def shown(path: str) -> str:
            return (inside + path) if path != "/" else (inside or "/")

        for path in sorted(set(tree_a) | set(tree_b)):
            a, b = tree_a.get(path), tree_b.get(path)
            if a == b or path in gone:
                continue
            if path in moved:
                d.changes.append(FileChange("renamed", shown(moved[path]), shown(path), "F"))
                continue
            change = "added" if a is None else "removed" if b is None else "modified"
            kind = (b or a)[0]
            d.changes.append(FileChange(change, shown(path), None, kind))
            if b is not None and change != "removed" and kind == "F":
                d.written += b[1]
        out.append(d)
    return out


def _renames(tree_a: dict, tree_b: dict, base_a: str, base_b: str) -> dict[str, str]:
    """new path -> old path for the regular files a tree comparison would
    call removed on one side and added on the other that are one file
    moved: the same size, mode, owner and mtime (a rename keeps them), the
    only such pair, and the same bytes. (zfs diff tells renames by object
    number; two unrelated trees have only this.)"""
    removed: dict[tuple, list[str]] = {}
    for path, sig in tree_a.items():
        if sig[0] == "F" and path not in tree_b:
            removed.setdefault(sig, []).append(path)
    added: dict[tuple, list[str]] = {}
    for path, sig in tree_b.items():
        if sig[0] == "F" and path not in tree_a and sig in removed:
            added.setdefault(sig, []).append(path)
    out = {}
    for sig, news in added.items():
        olds = removed[sig]
        if len(news) == 1 and len(olds) == 1 and _same_bytes(base_a + olds[0], base_b + news[0]):
            out[news[0]] = olds[0]
    return out


def _same_bytes(a: str, b: str) -> bool:
    import filecmp

    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _kind(mode: int) -> str:
    for test, letter in ((stat.S_ISDIR, "/"), (stat.S_ISLNK, "@"), (stat.S_ISBLK, "B"), (stat.S_ISCHR, "C"), (stat.S_ISFIFO, "|"), (stat.S_ISSOCK, "=")):
        if test(mode):
            return letter
    return "F"


def _walk(root: str, skip: Optional[str] = None) -> dict[str, tuple]:
    """path (from `root`, '/' first) -> what tells two versions apart,
    staying on root's filesystem (a child dataset is compared on its own),
    leaving out the directory `skip` (a path from root) and what it holds."""
    out: dict[str, tuple] = {}
    try:
        dev = os.lstat(root).st_dev
    except OSError:
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = "/" + os.path.relpath(dirpath, root) if dirpath != root else "/"
        rel_dir = "/" if rel_dir == "/." else rel_dir
        keep = []
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.join(rel_dir, name) == skip:
                continue
            st = os.lstat(full)
            if st.st_dev == dev:
                keep.append(name)
            out[os.path.join(rel_dir, name)] = _signature(full, st, directory=True)
        dirnames[:] = keep
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.join(rel_dir, name)] = _signature(full, os.lstat(full))
    return out


def _signature(path: str, st: os.stat_result, *, directory: bool = False) -> tuple:
    kind = _kind(st.st_mode)
    link = os.readlink(path) if kind == "@" else None
    # A directory's size and mtime change with its entries, which are
    # reported themselves: compare its mode and owner only.
    if kind == "/":
        return (kind, 0, st.st_mode, st.st_uid, st.st_gid, 0, None)
    return (kind, st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, link)
