"""How boot environments are shown: a table for people, tab-separated raw
values for scripts (-H), JSON (--json)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

from ..model import BootEnv

COLUMNS = ("A", "C", "NAME", "TITLE", "CREATED", "USED")


def human_size(n: int) -> str:
    """Bytes the way `zfs list` prints them: 512, 12K, 1.50M, 12.3G."""
    if n < 1024:
        return f"{n}B" if n else "0B"
    value = float(n)
    for unit in "KMGTPE":
        value /= 1024
        if value < 1024 or unit == "E":
            if value < 10:
                return f"{value:.2f}".rstrip("0").rstrip(".") + unit
            if value < 100:
                return f"{value:.1f}".rstrip("0").rstrip(".") + unit
            return f"{value:.0f}{unit}"
    raise AssertionError("unreachable")


def human_time(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M") if epoch else "-"


def table(bes: Iterable[BootEnv]) -> str:
    """The `bootenv list` table; A marks what boots next, C what runs now."""
    from tabulate import tabulate  # only `list` pays for it

    rows = [
        (
            "*" if be.active else "",
            "*" if be.running else "",
            be.name,
            _title(be),
            human_time(be.created),
            human_size(be.used),
        )
        for be in bes
    ]
    return tabulate(rows, headers=COLUMNS, tablefmt="plain", disable_numparse=True)


def _title(be: BootEnv) -> str:
    title = be.title
    if be.state and be.state != "complete":
        title = f"[{be.state}] {title}".rstrip()
    return title


def tab_separated(bes: Iterable[BootEnv]) -> str:
    """-H: no header, one BE a line, fields as in the table but raw:
    A and C as `A`/`C` or `-`, created in epoch seconds, used in bytes."""
    lines = [
        "\t".join(
            (
                "A" if be.active else "-",
                "C" if be.running else "-",
                be.name,
                _title(be) or "-",
                str(be.created or "-"),
                str(be.used),
            )
        )
        for be in bes
    ]
    return "\n".join(lines)


def as_dict(be: BootEnv) -> dict:
    return {
        "name": be.name,
        "dataset": be.dataset,
        "active": be.active,
        "running": be.running,
        "title": be.title,
        "created": be.created,
        "created_iso": datetime.fromtimestamp(be.created).astimezone().isoformat() if be.created else None,
        "used": be.used,
        "referenced": be.referenced,
        "origin": be.origin,
        "origin_be": be.origin_be,
        "kind": be.kind,
        "command": be.command,
        "state": be.state,
        "mounted": be.mounted,
        "datasets": [be.dataset, *be.children],
    }


def to_json(bes: Iterable[BootEnv]) -> str:
    return json.dumps([as_dict(be) for be in bes], indent=2)
