"""The boot chains' shape, on the host (no guest): every boot a scenario
names has a stage, the host allows the chain enough boots, and the
retention series covers its 30 apt runs once, boot by boot."""

from __future__ import annotations

import pathlib
import sys

import pytest

VM = pathlib.Path(__file__).resolve().parents[1] / "vm"
sys.path[:0] = [str(VM), str(VM / "boot")]

import boots  # noqa: E402
import chain_bpool  # noqa: E402
import chain_grub  # noqa: E402
import chain_grubhome  # noqa: E402
import retention_scenarios  # noqa: E402
import test_boots  # noqa: E402


@pytest.mark.parametrize("name, chain", [("grub", chain_grub.GrubChain), ("retention", chain_grub.RetentionChain),
                                         ("bpool", chain_bpool.BootPoolChain), ("ubuntu", chain_bpool.UbuntuChain),
                                         ("grubhome", chain_grubhome.GrubHomeChain)])
def test_every_scenario_boot_has_a_stage_and_the_host_allows_them(name, chain):
    named = {n for _what, numbers in test_boots.SCENARIOS[name].values() for n in numbers}
    assert max(named) == chain.last_boot
    assert all(callable(getattr(chain, f"stage{n}", None)) for n in range(1, chain.last_boot + 1))
    assert boots.CHAINS[name][1] > chain.last_boot  # one spare: a boot that never reports is seen


def test_the_other_suite_runs_the_whole_series_and_both_rollbacks():
    import suites

    assert suites.OTHER_CHAINS == ("retention", "bpool", "ubuntu")
    assert boots.CHAIN_DISKS == {"bpool": "bpool", "ubuntu": "ubuntu"}
    assert retention_scenarios.SERIES_SPLIT[-1][1] == 30
    assert {n for n in test_boots.SCENARIOS["retention"]["j"][1]} == set(range(1, len(retention_scenarios.SERIES_SPLIT) + 1))


def test_the_series_runs_each_apt_operation_once():
    ops, split = retention_scenarios.OPS, retention_scenarios.SERIES_SPLIT
    assert len(ops) == 30
    assert [i for first, last in split for i in range(first, last)] == list(range(30))
    for method in ("retention_1", "retention_2", "retention_3", "rollback_landed", "rollback_returned", "bench_create"):
        assert callable(getattr(chain_grub.GrubChain, method))


# The console tail of CI's failed crash chain (boot 2, trixie, 2026-12-07),
# shortened: the kernel died 3 s in, before the initramfs ran.
EARLY_PANIC = """\
[    3.011921]  default_idle+0x9/0x20
[    3.012397] RIP: 0010:sched_clock_idle_wakeup_event+0x5/0x40
[    3.012556] Kernel panic - not syncing: Fatal exception in interrupt
"""
DEAD_BE = """\
[    4.266666] Run /init as init process
Begin: Mounting 'rpool/ROOT/dead' on '/root//' ... done.
BOOTENV-VMTEST: dead init, exiting
[   13.953413] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100
"""
LATE_PANIC = """\
[    4.266666] Run /init as init process
Begin: Importing ZFS root pool 'rpool' ... Begin: Importing pool 'rpool' using defaults ... done.
[   12.0] Kernel panic - not syncing: Fatal exception
"""


def test_only_a_kernel_that_died_before_init_is_booted_again(tmp_path):
    def fault(text):
        log = tmp_path / "boot.console.log"
        log.write_text(text)
        return boots.harness.emulator_fault(log)
    assert fault(EARLY_PANIC)
    assert not fault(DEAD_BE)  # the chain's own dead BE: its checks expect it
    assert not fault(LATE_PANIC)  # the pool may have been imported: what it did counts
    assert not fault("[    4.266666] Run /init as init process\nreboot: Restarting system\n")
    assert not boots.harness.emulator_fault(tmp_path / "missing.log")


def test_run_boots_boots_again_after_an_emulator_fault_and_no_more_than_twice(tmp_path, monkeypatch):
    """run_boots with qemu replaced: boot 1's kernel dies before init
    three times running (booted again twice, then taken as it is: no
    report), boot 2 comes up and says done."""
    consoles = iter([EARLY_PANIC, EARLY_PANIC, EARLY_PANIC, "[ 4.2] Run /init as init process\nthe step ran\n"])
    started = []

    def fake_qemu(argv, log_path, timeout, on_line=None):
        started.append(log_path.name)
        text = next(consoles)
        log_path.write_text(text)
        if "the step ran" in text:  # its report, and the chain is done
            out = log_path.parent / "out"
            (out / "boot-2").mkdir(parents=True)
            (out / "boot-2" / "report.json").write_text('{"checks": [], "facts": {"root": "rpool/ROOT/debian"}}')
            (out / "done").write_text("")
        return boots.harness.QemuRun(1.0, False, 0)

    deb = tmp_path / "bootenv_0_all.deb"
    deb.write_text("")
    monkeypatch.setattr(boots.rootdisk, "ensure", lambda layout="plain": tmp_path / "root.qcow2")
    monkeypatch.setattr(boots.harness, "ensure_deb", lambda tree: deb)
    monkeypatch.setattr(boots.harness, "stream_qemu", fake_qemu)
    monkeypatch.setattr(boots.subprocess, "run", lambda *a, **k: None)  # qemu-img
    run = boots.run_boots("grub", run_dir=tmp_path / "run", max_boots=3)
    assert started == ["boot-1.console.log"] * 3 + ["boot-2.console.log"]
    assert run.emulator_faults == 2 and run.done
    assert [(b.n, b.report is not None) for b in run.boots] == [(1, False), (2, True)]
    assert (run.run_dir / "boot-1.console.emulator-fault.log").read_text() == EARLY_PANIC
