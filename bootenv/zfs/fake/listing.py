"""Listing for the in-memory ZFS: one pass over a subtree, fast enough for
1,000 boot environments with 10 snapshots each (~30 ms for 11,000 rows).

Snapshot rows are cached on the snapshot and handed out again while nothing
they show has changed, so callers must treat `Dataset.props` as read-only
(it is typed Mapping)."""

from __future__ import annotations

from typing import Sequence

from ..base import Dataset
from .space import Fs, Snap, cached_space, subtree, used_by_children
from .state import FakeState, child_mountpoint  # noqa: F401 (child_mountpoint re-exported)


def encrypted(props) -> bool:
    """Whether `zfs create` properties turn encryption on."""
    return props.get("encryption", "off") != "off"


def fs_row(f: Fs, mountpoint: str, ubd: int, ubs: int, ubc: int) -> dict[str, str]:
    """A filesystem's native properties, as `zfs get -p` prints them: the
    one place they are computed (list, get_props)."""
    props = {
        "type": "filesystem",
        "createtxg": f.txg_s,
        "creation": f.creation_s,
        "used": str(ubd + ubs + ubc),
        "referenced": str(f.refer),
        "usedbysnapshots": str(ubs),
        "usedbydataset": str(ubd),
        "usedbychildren": str(ubc),
        "mountpoint": mountpoint,
        "canmount": f.props.get("canmount", "on"),
        "mounted": "yes" if f.mount is not None else "no",
    }
    if f.origin is not None:
        props["origin"] = f.origin.name
    enc = f.enc_root
    if enc is not None:
        algorithm = enc.props["encryption"]
        props["encryptionroot"] = enc.name
        props["encryption"] = "aes-256-gcm" if algorithm == "on" else algorithm
        props["keystatus"] = "available"
    return props


def snap_row(s: Snap, used: int) -> dict[str, str]:
    """A snapshot's native properties (see fs_row)."""
    clones = snap_clones(s)
    return ({"clones": clones} if clones else {}) | {
        "type": "snapshot",
        "createtxg": s.txg_s,
        "creation": s.creation_s,
        "used": str(used),
        "referenced": str(s.refer),
        "userrefs": str(len(s.holds)),
    }


def snap_clones(s: Snap) -> str:
    """A snapshot's `clones`: every clone's name, sorted, comma-separated."""
    return ",".join(sorted(c.name for c in s.clones)) if s.clones else ""


class ListingMixin(FakeState):
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
            props = fs_row(f, mp[fid], ubd, ubs, ubc[fid])
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
                key = (s.name, snap_used[s], user_props, svals, len(s.holds), snap_clones(s))
                if s.row is None or s.row[0] != key:
                    sprops = snap_row(s, snap_used[s])
                    for k, p in enumerate(user_props):
                        if svals[k] is not None:
                            sprops[p] = svals[k]
                    s.row = (key, Dataset(s.name, sprops))
                append((s.createtxg, s.name, s.row[1]))
        rows.sort()  # (createtxg, name) never ties: names are unique
        return [r[2] for r in rows]

    def _native_row(self, obj: Fs | Snap) -> dict[str, str]:
        """The native properties of one filesystem or snapshot (get_props)."""
        if isinstance(obj, Snap):
            return snap_row(obj, cached_space(obj.fs, self._blocks)[2][obj])
        ubd, ubs, _ = cached_space(obj, self._blocks)
        ubc = used_by_children(subtree(obj), self._blocks)[id(obj)]
        return fs_row(obj, self._mountpoint(obj), ubd, ubs, ubc)

    def _row(self, snap: Snap, user_props: Sequence[str]) -> Dataset:
        props = self._native_row(snap)
        for p in user_props:
            v = self._user_prop(snap, p)
            if v is not None:
                props[p] = v
        return Dataset(snap.name, props)
