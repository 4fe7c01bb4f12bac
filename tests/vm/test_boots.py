"""Real reboots of the root-on-ZFS disk through GRUB (issue 5), one host
test per scenario. ONE run boots the disk several times in a chain
(tests/vm/boots.py on the host, tests/vm/boot/step.py in the guest: each
boot checks what the previous one armed and arms the next scenario):

    (a) activate x + reboot -> / is rpool/ROOT/x
    (d) activate g --once, confirm passes -> g is the default, and stays
    (b) activate hb --once, its health check fails -> the next boot is g, hb failed
    (c) activate dead --once, dead never comes up -> the next boot is g, dead failed
    (e) install --in-place hello on g, activate the checkpoint + reboot ->
        / is the checkpoint, hello is not installed there, g still has it

A scenario that could not run (no qemu, no disk, a boot that never
reported) FAILS, with the relevant boots' console tails.
"""

from __future__ import annotations

import pytest

import boots

SCENARIOS = {
    "a": "activate + reboot boots the activated BE",
    "b": "a trial whose health check fails falls back on the next boot",
    "c": "a trial BE that never comes up falls back on the next boot",
    "d": "a confirmed trial becomes the default and stays",
    "e": "an in-place apt install rolls back by booting its checkpoint",
}
_RUN: "boots.BootsRun | None" = None


@pytest.fixture(scope="module")
def boots_run() -> "boots.BootsRun":
    global _RUN
    if _RUN is None:
        try:
            _RUN = boots.run_boots()
        except Exception as e:  # no qemu, no image, the disk build failed
            pytest.fail(f"cannot run the boot chain: {type(e).__name__}: {e}", pytrace=False)
    return _RUN


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
                body.append(f"status:\n{f.get('status_text', '')}\nbootenv.env: {f.get('bootenv_env', '').strip()}")
                body.append(f"bootenv units journal:\n{_tail(f.get('journal', ''), 25)}")
            else:
                body.append("no report from this boot; console tail:\n" + _tail(b.console()))
            parts.append(head + "\n" + "\n".join(body))
    return "\n".join(parts)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_boot_scenario(scenario: str, boots_run: "boots.BootsRun") -> None:
    checks = boots_run.checks(scenario)
    failed = [c for c in checks if not c["ok"]]
    errors = [b for b in boots_run.boots if b.report and b.report.get("error")]
    if not checks or failed or errors or boots_run.error:
        why = "no checks ran" if not checks else f"{len(failed)} of {len(checks)} checks failed"
        pytest.fail(f"scenario ({scenario}) {SCENARIOS[scenario]}: {why}\n{_explain(boots_run, scenario)}",
                    pytrace=False)
