"""The boot chains' shape, on the host (no guest): every boot a scenario
names has a stage, the host allows the chain enough boots, and the
retention series covers its 30 apt runs once, boot by boot."""

from __future__ import annotations

import pathlib
import sys

VM = pathlib.Path(__file__).resolve().parents[1] / "vm"
sys.path[:0] = [str(VM), str(VM / "boot")]

import boots  # noqa: E402
import chain_grub  # noqa: E402
import retention_scenarios  # noqa: E402
import test_boots  # noqa: E402


def test_every_scenario_boot_has_a_stage_and_the_host_allows_them():
    chain = chain_grub.GrubChain
    named = {n for _what, numbers in test_boots.SCENARIOS["grub"].values() for n in numbers}
    assert max(named) == chain.last_boot
    assert all(hasattr(chain, f"stage{n}") for n in range(1, chain.last_boot + 1))
    assert boots.CHAINS["grub"][1] > chain.last_boot  # one spare: a boot that never reports is seen


def test_the_series_runs_each_apt_operation_once():
    ops, split = retention_scenarios.OPS, retention_scenarios.SERIES_SPLIT
    assert len(ops) == 30
    assert [i for first, last in split for i in range(first, last)] == list(range(30))
    for method in ("retention_1", "retention_2", "retention_3", "rollback_landed", "rollback_returned", "bench_create"):
        assert callable(getattr(chain_grub.GrubChain, method))
