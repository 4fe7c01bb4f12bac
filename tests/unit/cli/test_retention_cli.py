"""rollback, prune, keep/unkeep, destroy of several BEs, list -o, through
the CLI on a fake pool kept in a JSON file."""

from __future__ import annotations

import json

from bootenv.errors import EXIT_NOT_FOUND, EXIT_USAGE
from bootenv.zfs.fake import FakeZfs

from ..conftest import pool


def make(run, *names):
    for name in names:
        result = run("create", name)
        assert result.exit_code == 0, result.output


def names(run):
    return [row.split("\t")[2] for row in run("list", "-H").stdout.splitlines()]


def test_list_shows_generations_and_columns(run):
    make(run, "a", "b")
    rows = run("list", "-H").stdout.splitlines()
    assert [r.split("\t")[-1] for r in rows] == ["-", "1", "2"]
    data = json.loads(run("list", "--json").stdout)
    assert [d["generation"] for d in data] == [None, 1, 2] and data[1]["keep"] is False
    result = run("list", "-o", "gen,name,reclaim")
    assert result.stdout.splitlines()[0].split() == ["#", "NAME", "RECLAIM"]
    assert json.loads(run("list", "--json", "-o", "reclaim").stdout)[1]["reclaim"] == 0
    bad = run("list", "-o", "nope")
    assert bad.exit_code == EXIT_USAGE and "unknown column" in bad.stderr


def test_destroy_several_asked_once_with_what_it_frees(run):
    make(run, "a", "b", "c")
    dry = run("destroy", "-n", "1..2")
    assert dry.exit_code == 0, dry.output
    assert "Destroy 2 boot environments: b, a" in dry.stdout and "frees in total:" in dry.stdout
    result = run("destroy", "-y", "1", "c")
    assert result.exit_code == 0, result.output
    assert names(run) == ["debian", "b"]
    assert run("destroy", "-y", "7").exit_code == EXIT_NOT_FOUND


def test_rollback_and_back(run, state):
    make(run, "a")
    result = run("rollback")
    assert result.exit_code == 0, result.output
    assert "Rolled back: a will be used on the next boot" in result.stdout
    assert "at the next boot: a (generation 1" in result.stdout
    zfs = FakeZfs.load(state)
    zfs.reboot("rpool")
    zfs.save(state)
    result = run("rollback", "-n")
    assert "Roll back from a to debian" in result.stdout


def test_prune_json_and_keep(run, state):
    make(run, "m1")
    run("keep", "m1")
    dry = run("prune", "-n", "--json", "--keep", "0", "--keep-min", "0", "--manual")
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.stdout)
    assert data["dry_run"] is True and data["pressure"] is False
    by_name = {d["name"]: d for d in data["decisions"]}
    assert by_name["m1"]["action"] == "keep" and by_name["m1"]["reason"].startswith("pinned")
    assert by_name["debian"]["reason"] == "running"
    assert "rpool/ROOT/m1" in pool(state)
    run("unkeep", "m1")
    result = run("prune", "-y", "--keep", "0", "--keep-min", "0", "--manual")
    assert result.exit_code == 0, result.output
    assert "Pruned" in result.stdout
    assert names(run) == ["debian"]


def test_minus_one_is_a_selector_not_an_option(run, state):
    make(run, "a", "b")
    assert run("activate", "b").exit_code == 0
    zfs = FakeZfs.load(state)
    zfs.reboot("rpool")
    zfs.save(state)
    result = run("activate", "-n", "-1")
    assert result.exit_code == 0, result.output
    assert "Activate boot environment a" in result.stdout
    typo = run("activate", "--onec")
    assert typo.exit_code == EXIT_USAGE and "no such option: --onec" in typo.stderr
