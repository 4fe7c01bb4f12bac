"""Pick the bootloader driver: `BOOTENV_BOOTLOADER` / --bootloader, else
the plain bootfs driver (what ZFSBootMenu needs)."""

from __future__ import annotations

from typing import Optional

from ..errors import UsageError
from .base import Bootloader


def open_bootloader(spec: Optional[str]) -> Bootloader:
    """Given a spec (`bootfs`, `recording[:LOGFILE]`, or None for the
    default), return the driver. Raise UsageError for an unknown one."""
    if not spec or spec == "bootfs":
        return Bootloader()
    kind, _, arg = spec.partition(":")
    if kind == "recording":
        from .recording import RecordingBootloader

        return RecordingBootloader(arg or None)
    raise UsageError(f"unknown bootloader {spec!r} (known: bootfs, recording)")
