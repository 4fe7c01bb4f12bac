"""Small helpers for contract tests."""

from __future__ import annotations

from bootenv.zfs.base import Dataset

MiB = 1024 * 1024


def approx(actual: int, expected: int, *, rel: float = 0.15, slack: int = 512 * 1024) -> bool:
    """Whether a space figure from ZFS matches `expected` bytes, allowing
    real ZFS its metadata and rounding (rel of expected, plus slack)."""
    return abs(actual - expected) <= expected * rel + slack


def small(actual: int) -> bool:
    """Whether a space figure is ~0 (real ZFS: metadata only)."""
    return actual <= 512 * 1024


def by_name(rows: list[Dataset]) -> dict[str, Dataset]:
    return {d.name: d for d in rows}


def snapnames(rows: list[Dataset], fs: str) -> list[str]:
    """The snapshot names (after @) of `fs` in listing order."""
    return [d.snapname for d in rows if d.is_snapshot and d.filesystem == fs]
