"""The in-memory ZFS as JSON: save after acting, load before, so separate
processes (the CLI, a scripted scenario) act on one state file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .fake_space import Block, Fs, Pool, Snap

if TYPE_CHECKING:
    from .fake import FakeZfs

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
    return {
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(z: "FakeZfs", path: Path) -> "FakeZfs":
    with open(path) as f:
        data = json.load(f)
    return from_dict(z, data)

