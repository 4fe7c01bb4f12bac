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

import pytest

import boots

SCENARIOS = {
    "grub": {
        "a": "activate + reboot boots the activated BE",
        "b": "a trial whose health check fails falls back on the next boot",
        "c": "a trial BE that never comes up falls back on the next boot",
        "d": "a confirmed trial becomes the default and stays",
        "e": "a real `bootenv dist-upgrade` rolls back by booting its checkpoint",
        "f": "the apt hook takes one checkpoint for a plain apt install",
        "g": "the apt hook takes one checkpoint for an unattended-upgrades run of several dpkg batches",
        "h": "the sandbox on a booted system: upgrade, failing postinst, Ctrl-C; no mount left in any namespace",
        "i": "a BE held in another mount namespace is refused as busy, naming the holders; destroyed once released",
    },
    "systemd-boot": {
        "s1": "activate + reboot boots the activated BE through systemd-boot",
        "s2": "a trial BE that never comes up: systemd-boot's one-shot expires, the next boot is the default",
        "s3": "a confirmed trial becomes systemd-boot's default",
        "s4": "BEs share one kernel copy on the ESP; destroy removes the entry and what no entry needs",
        "s5": "activating a BE whose kernel has no modules is refused, nothing changes",
    },
}
_RUNS: "dict[str, boots.BootsRun | str]" = {}  # a run, or why it could not run


def chain_run(chain: str) -> "boots.BootsRun":
    """The chain's run, done once per session (every scenario of it reads it)."""
    if chain not in _RUNS:
        try:
            _RUNS[chain] = boots.run_boots(chain)
        except Exception as e:  # no qemu, no firmware, no image, the disk build failed
            _RUNS[chain] = f"cannot run the {chain} boot chain: {type(e).__name__}: {e}"
    if isinstance(_RUNS[chain], str):
        pytest.fail(_RUNS[chain], pytrace=False)
    return _RUNS[chain]


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def _explain(run: "boots.BootsRun", scenario: str) -> str:
    parts = [f"run dir {run.run_dir}; {len(run.boots)} boots, {run.total_seconds:.0f} s"]
    if run.error:
        parts.append(run.error)
    for b in run.boots:
        checks = [c for c in (b.report or {}).get("checks", []) if c["scenario"] == scenario]
        err = (b.report or {}).get("error")
        if b.report is None or err or any(not c["ok"] for c in checks):
            head = f"--- boot {b.n} ({b.seconds:.0f} s{', timed out' if b.timed_out else ''}) {b.console_log}"
            body = []
            for c in checks:
                body.append(f"{'PASS' if c['ok'] else 'FAIL'}: {c['what']}")
            if err:
                body.append(f"step error:\n{err}")
            if b.report:
                f = b.report.get("facts", {})
                loader = {k: f[k] for k in ("bootenv_env", "efi", "esp_entries") if k in f}
                body.append(f"status:\n{f.get('status_text', '')}\nbootloader: {loader}")
                body.append(f"bootenv units journal:\n{_tail(f.get('journal', ''), 25)}")
            else:
                body.append("no report from this boot; console tail:\n" + _tail(b.console()))
            parts.append(head + "\n" + "\n".join(body))
    return "\n".join(parts)


@pytest.mark.parametrize(("chain", "scenario"), [(c, s) for c in SCENARIOS for s in SCENARIOS[c]])
def test_boot_scenario(chain: str, scenario: str) -> None:
    run = chain_run(chain)
    checks = run.checks(scenario)
    failed = [c for c in checks if not c["ok"]]
    errors = [b for b in run.boots if b.report and b.report.get("error")]
    if not checks or failed or errors or run.error:
        why = "no checks ran" if not checks else f"{len(failed)} of {len(checks)} checks failed"
        pytest.fail(f"{chain} scenario ({scenario}) {SCENARIOS[chain][scenario]}: {why}\n{_explain(run, scenario)}",
                    pytrace=False)
