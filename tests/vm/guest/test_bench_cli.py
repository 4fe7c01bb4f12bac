"""bench/cli_real.py on real OpenZFS (runs INSIDE the VM guest): the whole
`bootenv` process side by side with the one `zfs list` it needs.

A reduced run (10 BEs x 3 snapshots, 3 interleaved tries: well under a
minute of guest time) that must finish and print its table; the figures
are printed for the log, never asserted (times under TCG emulation vary
too much run to run). The full run: bench/cli_real.py's docstring.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

# From $TREE (guest-run.sh: the tree's view without bootenv/), not the
# resolved share: the bench puts its tree on PYTHONPATH, and must time the
# installed bootenv.
BENCH = pathlib.Path(os.environ.get("TREE") or pathlib.Path(__file__).resolve().parents[3]) / "bench" / "cli_real.py"
ROWS = ("raw", "list", "list -H", "list --json", "status", "--version", "python")


def test_cli_bench_runs_and_prints_its_table():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--bes", "10", "--snapshots", "3", "--tries", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("cli_real: real ZFS") for line in lines), lines[:3]
    assert any(line.startswith("cli_real: 10 BEs: raw ") for line in lines), lines[:3]  # the figures as they come
    for row in ROWS:
        assert any(line.split("  ")[0].strip() == row for line in lines), f"no {row!r} row"
    assert any(line.startswith("10 BEs: list ") and "x raw" in line and "x python -c pass" in line for line in lines)
