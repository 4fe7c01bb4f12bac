"""How boot environments are shown: a table for people, tab-separated raw
values for scripts (-H), JSON (--json)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

from ..model import BootEnv, human_size  # noqa: F401  (human_size: re-exported)

COLUMNS = ("A", "C", "#", "NAME", "TITLE", "CREATED", "USED")
# -o/--columns: every column `list` can show, by the name -o takes.
# referenced, dataset, boot and kernels are what 42_bootenv asks for (-H -o).
ALL_COLUMNS = ("active", "running", "gen", "name", "title", "created", "used", "reclaim", "kind", "state", "origin",
               "keep", "referenced", "dataset", "boot", "kernels", "encryption")
HEADERS = {
    "active": "A", "running": "C", "gen": "#", "name": "NAME", "title": "TITLE", "created": "CREATED",
    "used": "USED", "reclaim": "RECLAIM", "kind": "KIND", "state": "STATE", "origin": "ORIGIN", "keep": "KEEP",
    "referenced": "REFER", "dataset": "DATASET", "boot": "BOOT", "kernels": "KERNELS", "encryption": "ENCRYPTION",
}
DEFAULT = ("active", "running", "gen", "name", "title", "created", "used")
# -H without -o: the columns it always had, in their order, then the new ones.
SCRIPTED = ("active", "running", "name", "title", "created", "used", "gen")


def parse_columns(text: str) -> tuple[str, ...]:
    """`-o name,gen,reclaim` -> the columns. Raise ValueError naming a bad one."""
    aliases = {"#": "gen", "generation": "gen", "a": "active", "c": "running"}
    chosen = tuple(aliases.get(c.strip().lower(), c.strip().lower()) for c in text.split(",") if c.strip())
    bad = [c for c in chosen if c not in ALL_COLUMNS]
    if bad or not chosen:
        raise ValueError(f"unknown column {', '.join(bad) or text!r} (known: {', '.join(ALL_COLUMNS)})")
    return chosen


def cell(be: BootEnv, column: str, *, scripted: bool, reclaim=None) -> str:
    """One field of a BE, for the table (people) or -H (raw)."""
    if column == "active":
        return ("A" if be.active else "-") if scripted else ("*" if be.active else "")
    if column == "running":
        return ("C" if be.running else "-") if scripted else ("*" if be.running else "")
    if column == "gen":
        return str(be.generation) if be.generation is not None else "-"
    if column == "name":
        return be.name
    if column == "title":
        return (_sanitized(_title(be)) or "-") if scripted else _title(be)
    if column == "created":
        return str(be.created or "-") if scripted else human_time(be.created)
    if column == "used":
        return str(be.used) if scripted else human_size(be.used)
    if column == "reclaim":
        value = (reclaim or {}).get(be.name)
        return "-" if value is None else (str(value) if scripted else human_size(value))
    if column == "kind":
        return be.kind or "-"
    if column == "state":
        return be.state or "-"
    if column == "origin":
        return be.origin_be or "-"
    if column == "keep":
        return "yes" if be.keep else ("-" if scripted else "")
    if column == "referenced":
        return str(be.referenced) if scripted else human_size(be.referenced)
    if column == "dataset":
        return be.dataset
    if column == "boot":
        return be.boot_dataset or "-"
    if column == "kernels":
        return be.kernels or "-"
    if column == "encryption":
        return be.encryption_root or "-"
    raise AssertionError(column)


def encryption_note(bes: list[BootEnv]) -> str | None:
    """The line under the table when BEs are encrypted: which, under which
    root, and that a checkpoint needs no key of its own. None otherwise."""
    encrypted = [be for be in bes if be.encrypted]
    if not encrypted:
        return None
    if len(encrypted) == len(bes):
        which = "every BE is"
    else:
        which = ", ".join(be.name for be in encrypted) + (" is" if len(encrypted) == 1 else " are")
    roots = ", ".join(sorted({be.encryption_root for be in encrypted}))
    return (f"encrypted: {which} encrypted (encryption root {roots}); "
            "a checkpoint is a clone under the same root: no new key, the same passphrase at boot")


def boot_pool_note(bes: list[BootEnv], space) -> str | None:
    """The line under the table where /boot is paired: the boot pool's
    free space (it is small, and every checkpoint keeps its kernels)."""
    paired = [be for be in bes if be.boot]
    if not paired:
        return None
    unpaired = [be.name for be in bes if not be.boot]
    missing = f"; no boot half: {', '.join(unpaired)}" if unpaired else ""
    where = paired[0].boot[0].rsplit("/", 1)[0]
    free = f": {human_size(space[1])} available of {human_size(space[2])}" if space else ""
    return f"boot pool{free}; each BE's /boot is {where}/NAME (its space is in USED){missing}"


def _sanitized(text: str) -> str:
    """A text field for -H: tabs and control characters become spaces."""
    return "".join(ch if ch.isprintable() and ch != "\t" else " " for ch in text)


def human_time(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M") if epoch else "-"


def table(bes: Iterable[BootEnv], columns: tuple[str, ...] = DEFAULT, reclaim=None) -> str:
    """The `bootenv list` table; A marks what boots next, C what runs now."""
    rows = [tuple(cell(be, c, scripted=False, reclaim=reclaim) for c in columns) for be in bes]
    headers = tuple(HEADERS[c] for c in columns)
    if all(text.isascii() and text.isprintable() for row in rows for text in row):
        return plain_table(rows, headers)
    # Wide or combining characters: tabulate measures them (wcwidth).
    from tabulate import tabulate

    return tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True)


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


def tab_separated(bes: Iterable[BootEnv], columns: tuple[str, ...] = SCRIPTED, reclaim=None) -> str:
    """-H: no header, one BE a line, fields as in the table but raw:
    A and C as `A`/`C` or `-`, created in epoch seconds, used in bytes,
    the generation last (`-` for a BE made before generations)."""
    return "\n".join("\t".join(cell(be, c, scripted=True, reclaim=reclaim) for c in columns) for be in bes)


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
        "datasets": list(be.datasets),
        "boot_dataset": be.boot_dataset,
        "generation": be.generation,
        "keep": be.keep,
        "encrypted": be.encrypted,
        "encryption_root": be.encryption_root,
    }


def to_json(bes: Iterable[BootEnv], reclaim=None) -> str:
    rows = []
    for be in bes:
        row = as_dict(be)
        if reclaim is not None:
            row["reclaim"] = reclaim.get(be.name)
        rows.append(row)
    return json.dumps(rows, indent=2)
