"""The in-memory ZFS as JSON: save after acting, load before, so separate
processes (the CLI, a scripted scenario) act on one state file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .space import Block, Fs, Pool, Snap

if TYPE_CHECKING:
    from .state import FakeState as FakeZfs

FORMAT = 1


def to_dict(z: "FakeZfs") -> dict:
    """Return the whole state as JSON-able data (deterministic: equal states
    give equal dicts, which strict mode relies on)."""
    filesystems = []
    snapshots = []
    for name in sorted(z._fs):
        f = z._fs[name]
        filesystems.append(
            {
                "id": f.id,
                "name": f.name,
                "createtxg": f.createtxg,
                "creation": f.creation,
                "props": dict(sorted(f.props.items())),
                "origin": f.origin.id if f.origin else None,
                "added": sorted(f.added),
                "removed": sorted(f.removed),
                "refer": f.refer,
                "mount": f.mount,
                "enc_root": f.enc_root.id if f.enc_root else None,
            }
        )
        for s in f.snaps:
            snapshots.append(
                {
                    "id": s.id,
                    "fs": f.id,
                    "name": s.snapname,
                    "createtxg": s.createtxg,
                    "creation": s.creation,
                    "props": dict(sorted(s.props.items())),
                    "added": sorted(s.added),
                    "removed": sorted(s.removed),
                    "refer": s.refer,
                    "holds": sorted(s.holds),
                }
            )
    data = {
        "format": FORMAT,
        "txg": z.txg,
        "next_id": z._next_id,
        "pools": [
            {
                "name": p.name,
                "size": p.size,
                "props": dict(sorted(p.props.items())),
                "bootfs": p.bootfs.id if p.bootfs else None,
            }
            for p in sorted(z._pools.values(), key=lambda p: p.name)
        ],
        "filesystems": filesystems,
        "snapshots": snapshots,
        "blocks": [[bid, b.size, b.birth, b.owner.id] for bid, b in sorted(z._blocks.items())],
    }
    if z._faults:
        data["faults"] = {op: [fault_to_dict(e) for e in queue] for op, queue in sorted(z._faults.items())}
    return data


def fault_to_dict(error: BaseException) -> dict:
    """An injected fault as JSON: a ZfsError class of zfs.base (or an
    OSError), its message, dataset name and errno."""
    from .. import base

    kind = type(error).__name__
    if not (getattr(base, kind, None) is type(error) or type(error) is OSError):
        raise TypeError(f"only ZfsError classes of bootenv.zfs.base (or OSError) can be saved, not {kind}")
    if isinstance(error, OSError):
        return {"type": kind, "message": error.strerror or str(error), "errno": error.errno}
    return {"type": kind, "message": str(error), "name": getattr(error, "name", None), "errno": error.errno}


def fault_from_dict(d: dict) -> BaseException:
    from .. import base

    kind = d["type"]
    if kind == "OSError":
        return OSError(d["errno"], d["message"])
    cls = getattr(base, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, base.ZfsError)):
        raise ValueError(f"unknown fault type {kind!r}")
    return cls(d["message"], d.get("name"), d.get("errno"))


def from_dict(z: "FakeZfs", data: dict) -> "FakeZfs":
    """Fill an empty FakeZfs from to_dict() data and return it."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown fake ZFS state format {data.get('format')!r}")
    z.txg = data["txg"]
    z._next_id = data["next_id"]
    pools = {}
    for p in data["pools"]:
        pool = Pool(p["name"], p["size"])
        pool.props = dict(p["props"])
        pools[pool.name] = pool
        z._pools[pool.name] = pool
    by_id: dict[int, Fs] = {}
    # Sorted by name, so a parent always comes before its children.
    for d in sorted(data["filesystems"], key=lambda d: d["name"]):
        name = d["name"]
        parent = z._fs[name.rsplit("/", 1)[0]] if "/" in name else None
        pool = pools[name.split("/", 1)[0]]
        f = Fs(d["id"], name, pool, parent, d["createtxg"], d["creation"], dict(d["props"]))
        f.added = set(d["added"])
        f.removed = set(d["removed"])
        f.refer = d["refer"]
        f.mount = d["mount"]
        if parent is None:
            pool.top = f
        else:
            parent.children[f.comp] = f
        if f.mount is not None:
            z._mounts[f.mount] = f
        z._fs[name] = f
        by_id[f.id] = f
    for d in data["filesystems"]:
        if d.get("enc_root") is not None:  # absent in a state saved before encryption
            by_id[d["id"]].enc_root = by_id[d["enc_root"]]
    for bid, size, birth, owner in data["blocks"]:
        fs = by_id[owner]
        z._blocks[bid] = Block(size, birth, fs)
        fs.owned.add(bid)
        fs.pool.allocated += size
    snaps: dict[int, Snap] = {}
    for d in sorted(data["snapshots"], key=lambda d: (d["createtxg"], d["id"])):
        fs = by_id[d["fs"]]
        s = Snap(
            d["id"],
            fs,
            d["name"],
            d["createtxg"],
            d["creation"],
            frozenset(d["added"]),
            frozenset(d["removed"]),
            d["refer"],
            dict(d["props"]),
            set(d["holds"]),
        )
        fs.snaps.append(s)
        z._snaps[s.name] = s
        snaps[s.id] = s
    for d in data["filesystems"]:
        f = by_id[d["id"]]
        if d["origin"] is not None:
            f.origin = snaps[d["origin"]]
            f.origin.clones.add(f)
    for p in data["pools"]:
        if p["bootfs"] is not None:
            pools[p["name"]].bootfs = by_id[p["bootfs"]]
    for op, queue in data.get("faults", {}).items():
        z._faults[op] = [fault_from_dict(d) for d in queue]
    return z


def save(z: "FakeZfs", path: Path) -> None:
    """Write the state to `path` atomically (temp file + rename)."""
    data = json.dumps(to_dict(z), separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:  # a temp file left by a failed write (after the rename it is gone)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class BadState(ValueError):
    """A state file that is not a fake pool (wrong JSON shape)."""


_TOP_KEYS = {"format": int, "txg": int, "next_id": int, "pools": list, "filesystems": list, "snapshots": list, "blocks": list}


def validate(data: object) -> dict:
    """Given loaded JSON, return it if it has the shape to_dict() writes.
    Raise BadState saying what is wrong."""
    if not isinstance(data, dict):
        raise BadState(f"expected a JSON object, found {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise BadState(f"unknown fake ZFS state format {data.get('format')!r} (want {FORMAT})")
    for key, kind in _TOP_KEYS.items():
        if not isinstance(data.get(key), kind):
            raise BadState(f"{key!r} missing or not a {kind.__name__}")
    for key in ("pools", "filesystems", "snapshots"):
        if not all(isinstance(row, dict) for row in data[key]):
            raise BadState(f"{key!r} holds something that is not an object")
    if not all(isinstance(row, list) and len(row) == 4 for row in data["blocks"]):
        raise BadState("'blocks' holds something that is not a [id, size, birth, owner] row")
    if not isinstance(data.get("faults", {}), dict):
        raise BadState("'faults' is not an object")
    return data


def load(z: "FakeZfs", path: Path) -> "FakeZfs":
    """Fill `z` from the state file at `path`. Raise ZfsUnavailable naming
    the file if it cannot be read or is not a fake pool."""
    from ..base import ZfsUnavailable

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return from_dict(z, validate(data))
    except (OSError, UnicodeDecodeError) as exc:
        raise ZfsUnavailable(f"cannot read fake ZFS state {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # json's errors, BadState, and a row of the wrong shape deeper down
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ZfsUnavailable(f"fake ZFS state {path} is not a fake pool: {what}") from exc

