"""Backends the contract suite runs against, and what a test gets.

A kind ("fake", "cli", "lzc") maps to a factory registered here with
`register(kind, factory)`. `fake` is registered below; the real kinds are
registered by tests/contract/real_backends.py, imported only when a real
kind is requested (so this suite imports cleanly without pyzfs or ZFS).
Which kinds run: env BOOTENV_TEST_BACKENDS (comma list, default "fake").

A factory is called once per test as `factory(tmp_path)` and returns a
BackendEnv; the fixture calls `env.close()` after the test, pass or fail.

BackendEnv -- what every contract test gets (subclass it for a new kind):

  kind    the backend kind, e.g. "fake"
  zfs     the ZfsBackend under test
  pool    the pool the test works in (real kinds: env BOOTENV_TEST_POOL)
  root    a fresh, EMPTY filesystem for this test only (e.g. <pool>/c<N>),
          mountpoint=none so filesystems created under it are not mounted
          (a test that wants a mount mounts explicitly); not mounted itself
  tmp     a fresh empty directory (Path) a test may create mount points in

  create(name, props=None)   create an empty filesystem (`zfs create`),
                             props (native or user) set at creation; not
                             mounted afterwards
  write(fs, nbytes)          add nbytes of NEW incompressible data to fs's
                             head (real: random bytes into a new file); the
                             mount state is left as it was found (mount at a
                             temporary directory and unmount if needed)
  delete_all(fs)             drop everything in fs's head (real: remove all
                             files); mount state left as found
  sync()                     make space accounting current (`zpool sync`;
                             frees and writes are otherwise lazy)
  close()                    unmount and destroy everything under root (and
                             root), restore the pool's bootfs as found

Tests use only `zfs` and these; they never name the pool literally, and they
keep their ZFS calls few (a real command costs ~1 s in the emulated guest).
"""

from __future__ import annotations

import importlib
import itertools
import os
from pathlib import Path
from typing import Callable, Mapping

from bootenv.zfs.base import ZfsBackend

REAL_KINDS = ("cli", "lzc")


class BackendEnv:
    """The environment one contract test runs in (see the module docstring)."""

    kind: str
    zfs: ZfsBackend
    pool: str
    root: str
    tmp: Path

    def create(self, name: str, props: Mapping[str, str] | None = None) -> None:
        raise NotImplementedError

    def write(self, fs: str, nbytes: int) -> None:
        raise NotImplementedError

    def delete_all(self, fs: str) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} root={self.root}>"


Factory = Callable[[Path], BackendEnv]
_FACTORIES: dict[str, Factory] = {}


def register(kind: str, factory: Factory) -> None:
    """Make backend kind `kind` available to the suite."""
    _FACTORIES[kind] = factory


def requested_kinds() -> list[str]:
    """The kinds to run, from env BOOTENV_TEST_BACKENDS (default: fake)."""
    raw = os.environ.get("BOOTENV_TEST_BACKENDS", "fake")
    return [k.strip() for k in raw.split(",") if k.strip()]


def factory(kind: str) -> Factory:
    """Return the factory of `kind`, importing the real backends on demand."""
    if kind not in _FACTORIES and kind in REAL_KINDS:
        importlib.import_module(__package__ + ".real_backends")
    try:
        return _FACTORIES[kind]
    except KeyError:
        raise LookupError(
            f"unknown backend kind {kind!r} in BOOTENV_TEST_BACKENDS (known: {', '.join(sorted(_FACTORIES))})"
        ) from None


# ------------------------------------------------------------------ fake

_fake_counter = itertools.count(1)
FAKE_POOL = "tank"


class FakeEnv(BackendEnv):
    """A fresh strict FakeZfs per test: every call is checked for
    atomicity (a raising call must change nothing) and followed by
    check_invariants()."""

    kind = "fake"

    def __init__(self, tmp: Path):
        from bootenv.zfs.fake import FakeZfs

        self.fake = FakeZfs(clock=lambda: 1_700_000_000, strict=True)
        self.zfs = self.fake
        self.pool = FAKE_POOL
        self.tmp = tmp
        self.fake.create_pool(self.pool, {"mountpoint": "/" + self.pool})
        # A sibling the test must never see or touch.
        self.fake.create(f"{self.pool}/other", {"mountpoint": "none"})
        self.root = f"{self.pool}/c{next(_fake_counter)}"
        self.fake.create(self.root, {"mountpoint": "none"})

    def create(self, name: str, props: Mapping[str, str] | None = None) -> None:
        self.fake.create(name, props)

    def write(self, fs: str, nbytes: int) -> None:
        self.fake.write(fs, nbytes)

    def delete_all(self, fs: str) -> None:
        self.fake.delete_all(fs)

    def sync(self) -> None:
        pass

    def close(self) -> None:
        self.fake.check_invariants()


register("fake", FakeEnv)
