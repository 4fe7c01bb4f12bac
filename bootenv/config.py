"""/etc/bootenv/bootenv.conf (BOOTENV_CONFIG names another file): KEY =
VALUE lines, '#' starts a comment. Every setting the code reads has its
default here or where it is read (boot/factory.py: bootloader); the file
ships with every setting commented out at its default (contrib/bootenv.conf,
tests/unit/test_conf_file.py)."""

from __future__ import annotations

import os
from typing import Optional

PATH = "/etc/bootenv/bootenv.conf"


def read(path: Optional[str] = None) -> dict[str, str]:
    """Given the file (default BOOTENV_CONFIG, else PATH), return its
    settings; a missing or unreadable file has none."""
    path = path or os.environ.get("BOOTENV_CONFIG") or PATH
    settings: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.split("#", 1)[0].partition("=")
                if sep and key.strip() and value.strip():
                    settings[key.strip()] = value.strip()
    except (OSError, UnicodeDecodeError):
        pass
    return settings
