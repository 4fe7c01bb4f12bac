"""What every part of FakeZfs shares, declared in one place: the state
(pools, filesystems, snapshots, blocks, mounts, injected faults), the
lookups that raise ZFS's errors, inherited values, and persistence. The
mixins (listing.py, mounts.py) and core.py build on this class only."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterator

from ..base import DatasetNotFound
from .names import INHERITED_DEFAULTS, check_name
from .space import Block, Fs, Pool, Snap


def child_mountpoint(parent_mp: str, comp: str) -> str:
    """The mountpoint a child inherits: the parent's with its name appended."""
    if parent_mp in ("none", "legacy"):
        return parent_mp
    return ("" if parent_mp == "/" else parent_mp) + "/" + comp


class FakeState:
    """The state of an in-memory pool set and the helpers every part of
    FakeZfs uses. `clock` gives `creation` seconds; `strict` makes every
    public call verify atomicity and `check_invariants()` (tests)."""

    def __init__(self, clock: Callable[[], float] = time.time, *, strict: bool = False):
        self.clock = clock
        self.strict = strict
        self.autosave: Path | None = None
        self.txg = 1
        self._next_id = 1
        self._pools: dict[str, Pool] = {}
        self._fs: dict[str, Fs] = {}
        self._snaps: dict[str, Snap] = {}
        self._blocks: dict[int, Block] = {}
        self._mounts: dict[str, Fs] = {}
        self._faults: dict[str, list[BaseException]] = {}
        self._depth = 0
        # Not persisted: which mounts were asked read-only (tests look).
        self.readonly_mounts: set[str] = set()
        self.private_mount_calls = 0  # private_mounts(): what a real backend would isolate


    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _new_txg(self) -> int:
        self.txg += 1
        return self.txg

    def _now(self) -> int:
        return int(self.clock())

    def _get_fs(self, name: str) -> Fs:
        check_name(name, "filesystem")
        fs = self._fs.get(name)
        if fs is None:
            raise DatasetNotFound(f"dataset does not exist: {name}", name)
        return fs

    def _get_snap(self, name: str) -> Snap:
        check_name(name, "snapshot")
        snap = self._snaps.get(name)
        if snap is None:
            raise DatasetNotFound(f"snapshot does not exist: {name}", name)
        return snap

    def _get_any(self, name: str) -> Fs | Snap:
        check_name(name)
        obj = self._fs.get(name) or self._snaps.get(name)
        if obj is None:
            raise DatasetNotFound(f"dataset does not exist: {name}", name)
        return obj

    def _allocated(self, pool: Pool) -> int:
        return pool.allocated

    def _mountpoint(self, fs: Fs) -> str:
        local = fs.props.get("mountpoint")
        if local is not None:
            return local
        if fs.parent is None:
            return "/" + fs.name
        return child_mountpoint(self._mountpoint(fs.parent), fs.comp)

    def _inherited(self, fs: Fs, prop: str) -> str | None:
        f: Fs | None = fs
        while f is not None:
            if prop in f.props:
                return f.props[prop]
            f = f.parent
        return INHERITED_DEFAULTS.get(prop)

    def _user_prop(self, obj: Fs | Snap, prop: str) -> str | None:
        """User properties inherit down the tree; a snapshot inherits its
        filesystem's (dsl_prop_get_ds)."""
        if isinstance(obj, Snap):
            if prop in obj.props:
                return obj.props[prop]
            obj = obj.fs
        return self._inherited(obj, prop)

    def _get_pool(self, pool: str) -> Pool:
        p = self._pools.get(pool)
        if p is None:
            raise DatasetNotFound(f"no such pool: {pool}", pool)
        return p

    def check_invariants(self) -> None:
        """Raise AssertionError unless the state is one OpenZFS could be in."""
        from .invariants import check_invariants

        check_invariants(self)

    # ------------------------------------------------------- persistence

    def to_dict(self) -> dict:
        from .store import to_dict

        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, **kwargs) -> "FakeState":
        from .store import from_dict

        return from_dict(cls(**kwargs), data)

    def save(self, path: str | Path) -> None:
        from .store import save

        save(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> "FakeState":
        from .store import load

        return load(cls(**kwargs), Path(path))

    @classmethod
    @contextlib.contextmanager
    def session(cls, path: str | Path, **kwargs) -> Iterator["FakeState"]:
        """Load the state at `path`, yield it, save it (even when the body
        raises: every completed operation is a committed one, as on disk)."""
        fake = cls.load(path, **kwargs)
        try:
            yield fake
        finally:
            fake.save(path)
