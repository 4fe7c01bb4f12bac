"""The systemd units of trial boots: what runs when."""

from __future__ import annotations

import configparser
from pathlib import Path

UNITS = Path(__file__).resolve().parents[3] / "contrib" / "systemd"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, dict_type=dict)
    parser.optionxform = str  # type: ignore[assignment]
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key, []).extend(value.split() if key in ("After", "Before", "WantedBy", "Requires") else [value])
    return out


def test_boot_started_runs_early_before_any_ordinary_service():
    u = unit("bootenv-boot.service")
    assert u["Unit"]["DefaultDependencies"] == ["no"]
    assert "sysinit.target" in u["Unit"]["Before"]
    assert "zfs-import.target" in u["Unit"]["After"]
    assert u["Service"]["ExecStart"] == ["/usr/bin/env bootenv boot-started"]
    assert u["Install"]["WantedBy"] == ["sysinit.target"]


def test_confirm_runs_after_boot_complete():
    u = unit("bootenv-confirm.service")
    assert "boot-complete.target" in u["Unit"]["After"] and "boot-complete.target" in u["Unit"]["Requires"]
    assert "bootenv-boot.service" in u["Unit"]["After"]
    assert u["Service"]["ExecStart"] == ["/usr/bin/env bootenv confirm"]
