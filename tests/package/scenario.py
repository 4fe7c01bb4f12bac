"""One fake-pool scenario, run through an installed `bootenv` (the wheel's
console script, or the program extracted from the .deb): every command a
user meets first, and a usage error that must be one line, never a
traceback (typer >= 0.26 parses with its own copy of click)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Sequence

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def command(argv: List[str], env: Dict[str, str], cwd: Path) -> Runner:
    """Given the argv prefix that starts bootenv (or its python -m), return
    run(args) -> CompletedProcess with `env` and text output. `cwd` is
    away from the source tree (python -m and -c import from there first)."""

    def run(args: Sequence[str]) -> subprocess.CompletedProcess:
        return subprocess.run([*argv, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)

    return run


def names(out: str) -> List[str]:
    """BE names in `bootenv list -H` output (third tab-separated field), active first mark."""
    return [line.split("\t")[2] for line in out.splitlines() if line]


def active(out: str) -> List[str]:
    return [line.split("\t")[2] for line in out.splitlines() if line and line.split("\t")[0] == "A"]


def check(ok: subprocess.CompletedProcess, what: str) -> str:
    assert ok.returncode == 0, f"{what}: exit {ok.returncode}\n{ok.stdout}\n{ok.stderr}"
    assert "Traceback" not in ok.stderr, f"{what}:\n{ok.stderr}"
    return ok.stdout


def run_scenario(bootenv: Runner, fake: Runner, state: Path) -> None:
    """Init a fake pool at `state`, then create, list, activate, destroy."""
    check(fake(["init", str(state), "--root", "rpool/ROOT/debian"]), "fake init")
    assert check(bootenv(["--version"]), "--version").startswith("bootenv ")
    assert "Usage" in check(bootenv(["--help"]), "--help")
    assert "Created boot environment x" in check(bootenv(["create", "x", "-t", "first"]), "create x")
    check(bootenv(["create", "y"]), "create y")
    out = check(bootenv(["list", "-H"]), "list -H")
    assert names(out) == ["debian", "x", "y"], out
    assert active(out) == ["debian"], out
    assert "x" in check(bootenv(["-l"]), "-l")
    check(bootenv(["-a", "y"]), "-a y")
    assert active(check(bootenv(["list", "-H"]), "list -H")) == ["y"]
    assert "Destroyed boot environment x" in check(bootenv(["-r", "x", "-y"]), "-r x -y")
    assert names(check(bootenv(["list", "-H"]), "list -H")) == ["debian", "y"]
    check(bootenv(["status"]), "status")
    # Usage errors: one line on stderr and exit 2, from any click.
    for bad in (["no-such-command"], ["rename", "y"], ["list", "--no-such-option"]):
        err = bootenv(bad)
        assert err.returncode == 2, f"{bad}: exit {err.returncode}\n{err.stderr}"
        assert err.stderr.startswith("bootenv: ") and "Traceback" not in err.stderr, err.stderr
