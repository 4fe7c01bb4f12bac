"""systemd-boot's loader variables in efivarfs (LoaderInfo,
LoaderEntryDefault, LoaderEntryOneShot, LoaderEntrySelected, ...): each a
file NAME-GUID holding 4 attribute bytes, then a NUL-ended UTF-16LE string.
Read by the bootloader detection (factory.py) and the systemd-boot driver;
standard library only, so detection stays cheap at start-up."""

from __future__ import annotations

import os
from typing import Optional

LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"  # systemd-boot's loader vendor GUID
EFIVARS = "/sys/firmware/efi/efivars"


def read_efi_string(path: str) -> Optional[str]:
    """An EFI variable file's string, or None (missing, empty, unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read()[4:]
    except OSError:
        return None
    return data.decode("utf-16-le", "replace").rstrip("\0") or None


def loader_var(name: str, efivars: str = EFIVARS) -> Optional[str]:
    """systemd-boot's variable `name` (e.g. "LoaderEntryDefault"), or None."""
    return read_efi_string(os.path.join(efivars, f"{name}-{LOADER_GUID}"))
