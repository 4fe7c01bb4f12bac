"""Real reboots of the root-on-ZFS disk, through GRUB (BIOS) and through
systemd-boot (UEFI, OVMF): one host test per scenario (issues 4 and 5).
Each chain is ONE run that boots the same cached disk several times
(tests/vm/boots.py on the host, tests/vm/boot/step.py in the guest: each
boot checks what the previous one armed and arms the next scenario; the
chains' own docs: tests/vm/boot/chain_grub.py, chain_sdboot.py).

A scenario that could not run (no qemu, no firmware, no disk, a boot that
never reported) FAILS, with the relevant boots' console tails.
"""

from __future__ import annotations

import os

import pytest

import boots
import schedule

# scenario -> (what it proves, the boots its checks come from). A boot that
# never comes up by design (grub 6, systemd-boot 3) is no scenario's boot.
SCENARIOS = {
    "grub": {
        "a": ("activate + reboot boots the activated BE", (1, 2)),
        "b": ("a trial whose health check fails falls back on the next boot", (3, 4, 5)),
        "c": ("a trial BE that never comes up falls back on the next boot", (5, 7)),
        "d": ("a confirmed trial becomes the default and stays", (2, 3, 5, 7)),
        "e": ("a real `bootenv dist-upgrade` rolls back by booting its checkpoint", (7, 8, 9)),
        "f": ("the apt hook takes one checkpoint for a plain apt install", (7,)),
        "g": ("the apt hook takes one checkpoint for an unattended-upgrades run of several dpkg batches", (7,)),
        "h": ("the sandbox on a booted system: upgrade, failing postinst, Ctrl-C; no mount left in any namespace", (9, 10)),
        "i": ("a BE held in another mount namespace is refused as busy, naming the holders; destroyed once released", (9, 10)),
        "l": ("a BE sent as an increment to a stream file and received as a new BE boots with the sender's files", (10, 11)),
    },
    "systemd-boot": {
        "s1": ("activate + reboot boots the activated BE through systemd-boot", (1, 2)),
        "s2": ("a trial BE that never comes up: systemd-boot's one-shot expires, the next boot is the default", (2, 4)),
        "s3": ("a confirmed trial becomes systemd-boot's default", (4, 5)),
        "s4": ("BEs share one kernel copy on the ESP; destroy removes the entry and what no entry needs", (5,)),
        "s5": ("activating a BE whose kernel has no modules is refused, nothing changes", (4,)),
    },
    "crash": {
        "doc": ("`bootenv doctor` names the test disk's layout and finds a rollback would boot", (1,)),
        "p1": ("a power cut in `activate` (bootfs set, GRUB's default not yet): one whole BE boots, repair, activate again", (1, 2)),
        "p2": ("a power cut in `dist-upgrade --in-place` after apt: dpkg whole, the checkpoint named, repair, run again", (2, 3)),
        "k1": ("kill -9 in `destroy` of an origin after its dependant's promotion: repair, destroy again, the dependant whole", (3,)),
        "k2": ("a trial boot whose bootenv-boot.service is killed: the machine boots one whole BE, repair", (3, 4)),
    },
}
SCENARIOS["retention"] = {  # the other suite's chain (suites.py)
    "j": ("30 real apt runs through the hook with the shipped retention: the BE count and allocated space stay bounded",
          (1, 2, 3)),
    "k": ("after the series, `bootenv rollback` + reboot lands on the checkpoint before the last apt run; "
          "a second rollback + reboot returns (rpm-ostree #906)", (3, 4, 5)),
}
SCENARIOS["bpool"] = {  # the other suite's chain on the OpenZFS guide's layout (rootdisk/build-bpool.sh)
    "m": ("bpool + encrypted rpool: doctor --fix gives GRUB a shared home; a checkpoint keeps its own /boot half, "
          "so after a kernel upgrade and autoremove, activating it boots its old kernel; activated back", (1, 2)),
}
SCENARIOS["ubuntu"] = {  # the other suite's chain on Ubuntu's installer layout (rootdisk/build-ubuntu.sh)
    "u": ("Ubuntu's layout (bpool, a root `on` with children, USERDATA, a zsys state): the same kernel upgrade, "
          "autoremove and rollback; only the booted BE's datasets mount by themselves; USERDATA and zsys's state kept",
          (1, 2)),
}
SCENARIOS["grubhome"] = {  # the plain disk with GRUB's directory moved into the BE (boot/chain_grubhome.py)
    "n": ("/boot/grub inside rpool/ROOT/debian: activate refused naming doctor --fix; doctor --fix gives GRUB rpool/grub; "
          "activate a checkpoint, reboot into it, activate back", (1, 2, 3)),
}
# The chains this session runs: $BOOTENV_VM_CHAINS (space-separated), else
# the four of the default suite (suites.py; `make test-vm`).
CHOSEN = os.environ.get("BOOTENV_VM_CHAINS", "grub systemd-boot crash grubhome").split()
# The boots of a chain whose power the host must have cut (tests/vm/boots.py
# POWER_CUT): a scenario of them fails if the cut did not happen.
POWER_CUTS = {"crash": (1, 2)}
_RUNS: "dict[str, boots.BootsRun | str]" = {}  # a run, or why it could not run


def chain_job(chain: str):
    return lambda: boots.run_boots(chain)


def chain_run(chain: str) -> "boots.BootsRun":
    """The chain's run, done once per session (every scenario of it reads
    it; conftest.py started it beside the others, schedule.py)."""
    if chain not in _RUNS:
        try:
            _RUNS[chain] = schedule.result(chain, chain_job(chain))
        except Exception as e:  # no qemu, no firmware, no image, the disk build failed
            _RUNS[chain] = f"cannot run the {chain} boot chain: {type(e).__name__}: {e}"
    if isinstance(_RUNS[chain], str):
        pytest.fail(_RUNS[chain], pytrace=False)
    return _RUNS[chain]


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def boot_problems(run: "boots.BootsRun", numbers) -> list[str]:
    """Why the boots a scenario needs did not all run and report: timed
    out (say so, with the knob), never ran (because of which boot), no
    report, or the step failed. Empty when they all did."""
    by_n = {b.n: b for b in run.boots}
    problems = []
    for n in numbers:
        b = by_n.get(n)
        if b is None:
            problems.append(f"boot {n} was not run: {run.error or 'the chain ended before it'}")
        elif b.timed_out:
            problems.append(f"boot {n} timed out after {b.seconds:.0f} s: the machine may be loaded; "
                            f"BOOTENV_VM_BOOT_TIMEOUT={boots.BOOT_TIMEOUT * 2:.0f} allows more (console {b.console_log})")
        elif b.report is None:
            problems.append(f"boot {n} never reported; console tail:\n{_tail(b.console())}")
        elif b.report.get("error"):
            problems.append(f"boot {n}'s step failed:\n{b.report['error']}")
    return problems


def power_problems(chain: str, run: "boots.BootsRun", numbers) -> list[str]:
    """The boots of `numbers` that should have ended in a power cut and did not."""
    by_n = {b.n: b for b in run.boots}
    return [f"boot {n} should have ended in a power cut (system_reset) and did not; console {by_n[n].console_log}"
            for n in numbers if n in POWER_CUTS.get(chain, ()) and n in by_n and not by_n[n].power_cut]


def _explain(run: "boots.BootsRun", scenario: str, numbers) -> str:
    parts = [f"run dir {run.run_dir}; {len(run.boots)} boots, {run.total_seconds:.0f} s"
             + (f"; {run.emulator_faults} booted again after the kernel died before init" if run.emulator_faults else "")]
    for b in run.boots:
        if b.n not in numbers:
            continue
        checks = [c for c in (b.report or {}).get("checks", []) if c["scenario"] == scenario]
        if b.report is None or b.report.get("error") or any(not c["ok"] for c in checks):
            head = f"--- boot {b.n} ({b.seconds:.0f} s{', timed out' if b.timed_out else ''}) {b.console_log}"
            body = [f"{'PASS' if c['ok'] else 'FAIL'}: {c['what']}" for c in checks]
            if b.report:
                f = b.report.get("facts", {})
                loader = {k: f[k] for k in ("bootenv_env", "efi", "esp_entries") if k in f}
                body.append(f"status:\n{f.get('status_text', '')}\nbootloader: {loader}")
                body.append(f"bootenv units journal:\n{_tail(f.get('journal', ''), 25)}")
            parts.append(head + "\n" + "\n".join(body))
    return "\n".join(parts)


@pytest.mark.parametrize(("chain", "scenario"), [(c, s) for c in CHOSEN for s in SCENARIOS[c]])
def test_boot_scenario(chain: str, scenario: str) -> None:
    what, numbers = SCENARIOS[chain][scenario]
    run = chain_run(chain)
    problems = boot_problems(run, numbers) + power_problems(chain, run, numbers)
    checks = [c for c in run.checks(scenario) if c["boot"] in numbers]
    failed = [c for c in checks if not c["ok"]]
    if problems or not checks or failed:
        why = "; ".join(p.splitlines()[0] for p in problems) if problems else (
            "no checks ran" if not checks else f"{len(failed)} of {len(checks)} checks failed")
        detail = "\n".join(problems)
        pytest.fail(f"{chain} scenario ({scenario}) {what}: {why}\n{detail}\n{_explain(run, scenario, numbers)}",
                    pytrace=False)


def test_chain_ran_to_its_end() -> None:
    """Each chain said it was done (no scenario hides a boot that never
    reported, or a step error in a boot no scenario names)."""
    bad = []
    for chain in CHOSEN:
        run = chain_run(chain)
        if not run.done or run.error:
            bad.append(f"{chain}: {run.error or 'not done'}")
        bad += [f"{chain} boot {b.n}'s step failed:\n{b.report['error']}" for b in run.boots if b.report and b.report.get("error")]
    assert not bad, "\n".join(bad)
