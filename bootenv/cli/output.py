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
    if all(cell.isascii() and cell.isprintable() for row in rows for cell in row):
        return plain_table(rows, COLUMNS)
    # Wide or combining characters: tabulate measures them (wcwidth).
    from tabulate import tabulate

    return tabulate(rows, headers=COLUMNS, tablefmt="plain", disable_numparse=True)


def plain_table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    """Printable-ASCII cells as tabulate's "plain" format lays them out
    (disable_numparse: every cell text, left-aligned; each column as wide
    as its widest cell and at least its header plus two; two spaces
    between columns; cells stripped, lines right-stripped), without
    importing tabulate (a start-up cost every `bootenv list` would pay).
    tests/unit/cli/test_output.py holds it to tabulate's output."""
    cells = [[c.strip() for c in row] for row in rows]
    widths = [max([len(h) + 2, *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


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


# The fields `list -H -o` can print, as -H prints them.
def _sanitized(text: str) -> str:
    return "".join(ch if ch.isprintable() and ch != "\t" else " " for ch in text)


FIELDS = {
    "active": lambda be: "A" if be.active else "-",
    "running": lambda be: "C" if be.running else "-",
    "name": lambda be: be.name,
    "title": lambda be: _sanitized(_title(be)) or "-",
    "created": lambda be: str(be.created or "-"),
    "used": lambda be: str(be.used),
    "referenced": lambda be: str(be.referenced),
    "dataset": lambda be: be.dataset,
    "kernels": lambda be: be.kernels or "-",
}
DEFAULT_FIELDS = ("active", "running", "name", "title", "created", "used")


def parse_fields(spec: str) -> tuple[str, ...]:
    """Given `-o a,b,c`, return the field names. Raise ValueError naming
    an unknown one."""
    fields = tuple(f.strip() for f in spec.split(",") if f.strip())
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields:
        raise ValueError(f"unknown field {', '.join(unknown) or repr(spec)} (known: {', '.join(FIELDS)})")
    return fields


def fields_separated(bes: Iterable[BootEnv], fields: Iterable[str]) -> str:
    """-H -o FIELDS: one BE a line, the chosen fields tab-separated (text
    fields with tabs and control characters turned into spaces)."""
    getters = [FIELDS[f] for f in fields]
    return "\n".join("\t".join(get(be) for get in getters) for be in bes)


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
