"""Listing for the in-memory ZFS: one pass over a subtree, fast enough for
1,000 boot environments with 10 snapshots each (~30 ms for 11,000 rows).

Snapshot rows are cached on the snapshot and handed out again while nothing
they show has changed, so callers must treat `Dataset.props` as read-only
(it is typed Mapping)."""

from __future__ import annotations

from typing import Sequence

from ..base import Dataset
from .space import Fs, Snap, cached_space, subtree, used_by_children


def child_mountpoint(parent_mp: str, comp: str) -> str:
    """The mountpoint a child inherits: the parent's with its name appended."""
    if parent_mp in ("none", "legacy"):
        return parent_mp
    return ("" if parent_mp == "/" else parent_mp) + "/" + comp


class ListingMixin:
    def _list(self, top: Fs, snapshots: bool, user_props: tuple[str, ...]) -> list[Dataset]:
        """One pass over the subtree: space bottom-up, inherited values
        top-down, then rows. Snapshot rows are cached on the snapshot and
        reused while nothing they show has changed."""
        tree = subtree(top)
        ubc = used_by_children(tree, self._blocks)
        mp: dict[int, str] = {id(top): self._mountpoint(top)}
        inh: dict[int, tuple[str | None, ...]] = {
            id(top): tuple(self._inherited(top, p) for p in user_props)
        }
        for f in tree[1:]:
            pid = id(f.parent)
            fp = f.props
            local = fp.get("mountpoint")
            mp[id(f)] = local if local is not None else child_mountpoint(mp[pid], f.comp)
            if user_props:
                parent_vals = inh[pid]
                inh[id(f)] = tuple(
                    fp[p] if p in fp else parent_vals[k] for k, p in enumerate(user_props)
                )
            else:
                inh[id(f)] = ()
        rows: list[tuple[int, str, Dataset]] = []
        append = rows.append
        for f in tree:
            fid = id(f)
            ubd, ubs, snap_used = f.space  # type: ignore[misc]  # filled by used_by_children
            c = ubc[fid]
            props = {
                "type": "filesystem",
                "createtxg": f.txg_s,
                "creation": f.creation_s,
                "used": str(ubd + ubs + c),
                "referenced": str(f.refer),
                "usedbysnapshots": str(ubs),
                "usedbydataset": str(ubd),
                "usedbychildren": str(c),
                "mountpoint": mp[fid],
                "canmount": f.props.get("canmount", "on"),
                "mounted": "yes" if f.mount is not None else "no",
            }
            if f.origin is not None:
                props["origin"] = f.origin.name
            vals = inh[fid]
            for k, p in enumerate(user_props):
                if vals[k] is not None:
                    props[p] = vals[k]
            append((f.createtxg, f.name, Dataset(f.name, props)))
            if not snapshots:
                continue
            for s in f.snaps:
                sp = s.props
                if user_props and sp:
                    svals = tuple(sp[p] if p in sp else vals[k] for k, p in enumerate(user_props))
                else:
                    svals = vals
                key = (s.name, snap_used[s], user_props, svals)
                if s.row is None or s.row[0] != key:
                    sprops = {
                        "type": "snapshot",
                        "createtxg": s.txg_s,
                        "creation": s.creation_s,
                        "used": str(snap_used[s]),
                        "referenced": str(s.refer),
                    }
                    for k, p in enumerate(user_props):
                        if svals[k] is not None:
                            sprops[p] = svals[k]
                    s.row = (key, Dataset(s.name, sprops))
                append((s.createtxg, s.name, s.row[1]))
        rows.sort()  # (createtxg, name) never ties: names are unique
        return [r[2] for r in rows]

    def _row(self, snap: Snap, user_props: Sequence[str]) -> Dataset:
        _, _, snap_used = cached_space(snap.fs, self._blocks)
        props = {
            "type": "snapshot",
            "createtxg": str(snap.createtxg),
            "creation": str(snap.creation),
            "used": str(snap_used[snap]),
            "referenced": str(snap.refer),
        }
        for p in user_props:
            v = self._user_prop(snap, p)
            if v is not None:
                props[p] = v
        return Dataset(snap.name, props)
