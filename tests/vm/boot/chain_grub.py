"""The GRUB chain (SeaBIOS -> GRUB): one run, 11 boots; boot 6 never comes
up, by design. No boot carries more than about half its time budget
(BOOTENV_VM_BOOT_TIMEOUT): the apt scenarios are spread over boots 7-10.

  1 debian  refresh bootenv from the tree; create x; activate x           (a)
  2 x       check (a); create g; activate g --once                        (d)
  3 g       trial: confirm ran and passed -> g is the default; create hb
            (health check fails); activate hb --once                      (b)
  4 hb      trial: confirm failed -> hb failed, next boot g
  5 g       check (b) back on g, (d) g stays; create dead (its init exits);
            activate dead --once                                          (c)
  6 dead    never comes up (PID 1 exits -> panic -> reboot -> qemu ends)
  7 g       check (c): back on g, dead marked failed; then apt against a
            local repository (the only apt source), apt_scenarios.py:
            the apt hook under a plain apt (f) and under a real
            unattended-upgrades run (g)
  8 g       a real `bootenv dist-upgrade --in-place` hello 1.0 -> 2.0
            under a checkpoint; activate the checkpoint                   (e)
  9 cp      check (e): / is the checkpoint, hello is 1.0 again, g still
            has 2.0; the sandbox on a booted system, sandbox_scenarios.py:
            an upgrade, a failing postinst, no mount left in any
            namespace                                                     (h)
 10 cp      Ctrl-C in a sandbox (h); the good sandbox of boot 9 mounted the
            old way is held by services and refused as busy, naming
            them (i); a BE sent as an increment to a stream file and
            received as a new BE: `bootenv send src --from cp@src -o FILE`,
            `bootenv receive rcv -i FILE`; activate rcv                    (l)
 11 rcv     check (l): / is the received BE, its files are the sender's; done

`bootenv rollback` after apt runs through the hook, and the rollback of
that rollback (k), are the other release's chain, after its 30-run
retention series (RetentionChain below).

The 30-run retention series (j: BE count and allocated space bounded,
retention_scenarios.py; 11-35 s an apt run under TCG, three boots' worth)
is the same chain (RetentionChain, `retention`), beside this one in
`make test-vm`; on this chain's release it runs as boots of its own:
  BOOTENV_VM_ONLY=retention_1,retention_2,retention_3,rollback_landed,rollback_returned tests/vm/boots.py run grub
"""

from __future__ import annotations

import json
import os

from apt_scenarios import AptScenarios
from retention_scenarios import RetentionScenarios
from sandbox_scenarios import SandboxScenarios
from step import BE_ROOT, OUT, Step, sh


STREAM = "/var/tmp/bootenv-vmtest-src.bes"  # on the running BE: a few MiB
RECEIVED = f"{OUT}/received.json"
RECEIVED_MARK = "/etc/bootenv-vmtest-received"


class GrubChain(RetentionScenarios, SandboxScenarios, AptScenarios, Step):
    last_boot = 11

    def loader_facts(self) -> None:
        self.facts["bootenv_env"] = sh("grub-editenv /boot/grub/bootenv.env list")["out"]
        self.facts["grubenv"] = sh("grub-editenv /boot/grub/grubenv list")["out"]

    def once_pending(self, now: bool = False) -> bool:
        """A non-empty bootenv_once in GRUB's bootenv.env: as gathered at the
        start of this boot, or (`now`) as it is after this step's actions."""
        text = sh("grub-editenv /boot/grub/bootenv.env list")["out"] if now else self.facts["bootenv_env"]
        return any(l.startswith("bootenv_once=") and l.strip() != "bootenv_once=" for l in text.splitlines())

    def stage1(self) -> None:
        self.check("a", self.running == "debian", f"boot 1 runs the disk's own BE debian (root {self.facts['root']})")
        self.check("a", self.status("bootloader") == "grub",
                   f"bootenv detected GRUB under BIOS (bootloader {self.status('bootloader')})")
        self.refresh_bootenv()
        self.do("bootenv create x")
        self.do("bootenv activate x")
        self.do("grep -n 'bootenv' /boot/grub/grub.cfg | tail -20")

    def stage2(self) -> None:
        self.check("a", self.running == "x", f"after 'activate x' and a reboot, / is {BE_ROOT}/x (it is {self.facts['root']})")
        self.check("a", self.status("next_boot") == "x", f"status: next boot x (is {self.status('next_boot')})")
        self.do("bootenv create g")
        self.do("bootenv activate g --once")
        self.check("d", not self.status("trial"), "no trial before arming g")

    def stage3(self) -> None:
        self.check("d", self.running == "g", f"the trial boot runs g (root {self.facts['root']})")
        self.check("d", self.facts["units"]["bootenv-confirm.service"] == "active",
                   f"bootenv-confirm.service succeeded on the good trial (is {self.facts['units']['bootenv-confirm.service']})")
        self.check("d", self.status("default") == "g" and self.status("next_boot") == "g",
                   f"after confirm, g is the default and the next boot (default {self.status('default')}, next {self.status('next_boot')})")
        self.check("d", not self.status("trial"), f"the trial is over (trial {self.status('trial')})")
        self.check("d", self.status("last_good") == "g", f"g is the last good BE (is {self.status('last_good')})")
        self.create_failing_health("hb")
        self.do("bootenv activate hb --once")
        self.check("b", self.once_pending(now=True), "the one-shot for hb is armed in bootenv.env")

    def stage4(self) -> None:
        self.check("b", self.running == "hb", f"the trial boot runs hb (root {self.facts['root']})")
        self.check("b", self.facts["units"]["bootenv-confirm.service"] == "failed",
                   f"bootenv-confirm.service failed on hb's health check (is {self.facts['units']['bootenv-confirm.service']})")
        self.check("b", self.verdict("hb") == "failed", f"status: hb failed (verdicts {self.status('verdicts')})")
        self.check("b", self.status("next_boot") == "g", f"status: the next boot is g (is {self.status('next_boot')})")
        self.check("b", not self.once_pending(), "no one-shot left in bootenv.env")

    def stage5(self) -> None:
        self.check("b", self.running == "g", f"the boot after the failed trial is back on g (root {self.facts['root']})")
        self.check("d", self.running == "g", f"the confirmed g stays across reboots (root {self.facts['root']})")
        self.create_dead("dead")
        self.do("bootenv activate dead --once")
        self.check("c", self.once_pending(now=True), "the one-shot for dead is armed in bootenv.env")

    def stage6(self) -> None:
        self.check("c", False, f"boot 6 should never come up (dead's init exits), but it runs {self.facts['root']}")

    def stage7(self) -> None:
        self.check("c", self.running == "g", f"after the dead trial, the next boot is back on g (root {self.facts['root']})")
        self.check("c", self.verdict("dead") == "failed", f"status: dead failed (verdicts {self.status('verdicts')})")
        self.check("c", not self.status("trial"), f"the trial is over (trial {self.status('trial')})")
        self.check("c", not self.once_pending(), "no one-shot left in bootenv.env")
        self.check("d", self.running == "g", "g still boots by default")
        self.hooks_on_g()

    def stage8(self) -> None:
        self.check("e", self.running == "g", f"the boot after the hook scenarios is g (root {self.facts['root']})")
        self.dist_upgrade_on_g()

    def stage9(self) -> None:
        self.check_rollback()
        self.sandbox_upgrade_and_failure()

    def stage10(self) -> None:
        cp = open(f"{OUT}/checkpoint").read().strip()
        self.check("h", self.running == cp, f"boot 10 runs the checkpoint {cp} again (root {self.facts['root']})")
        self.sandbox_interrupt()
        self.busy_is_busy()
        self.receive_and_activate()

    def stage11(self) -> None:
        self.received_boots()
        self.next_action = "poweroff"

    # ------------------------------------------------------------ (l)

    def receive_and_activate(self) -> None:
        """(l), issue 15: a BE made on this machine travels as a stream file
        (an increment from the snapshot it was cloned from, which the
        receiver finds by guid) and lands as a new BE, which is activated."""
        import secrets

        token = secrets.token_hex(8)
        base = self.running
        self.create_changed("src", f"printf '%s\\n' {token} >{{where}}{RECEIVED_MARK}")
        sh(f"rm -f {STREAM}")
        self.do(f"bootenv send src --from {base}@src -o {STREAM}")
        size = os.path.getsize(STREAM)
        self.do(f"bootenv receive rcv -i {STREAM}")
        sh(f"rm -f {STREAM}")
        rcv = {b["name"]: b for b in self.bes()}.get("rcv") or {}
        origin = sh(f"zfs get -H -o value origin {BE_ROOT}/rcv")["out"].strip()
        self.check("l", rcv.get("state") == "complete" and origin == f"{BE_ROOT}/{base}@src",
                   f"the stream ({size} bytes) landed as rcv, complete, a clone of {BE_ROOT}/{base}@src "
                   f"(state {rcv.get('state')}, origin {origin})")
        self.do("bootenv activate rcv")
        self.check("l", self.bootenv_status().get("next_boot") == "rcv", "rcv boots next")
        with open(RECEIVED, "w") as f:
            json.dump({"token": token, "stream_bytes": size}, f)

    def received_boots(self) -> None:
        sent = json.load(open(RECEIVED))
        self.check("l", self.running == "rcv", f"the received BE boots: / is {BE_ROOT}/rcv (it is {self.facts['root']})")
        mark = sh(f"cat {RECEIVED_MARK}")["out"].strip()
        self.check("l", mark == sent["token"], f"with the sender's files ({RECEIVED_MARK}: {mark!r}, sent {sent['token']!r})")
        received = sh(f"zfs get -H -o value org.bootenv:received {BE_ROOT}/rcv")["out"].strip()
        self.check("l", received not in ("", "-"), f"rcv says it was received (org.bootenv:received {received!r})")

    def quick(self) -> None:
        """BOOTENV_VM_ONLY=quick (boots.py): boot 1 only, the sandbox
        scenarios on the disk's own BE."""
        self.refresh_bootenv()
        self.sandbox_upgrade_and_failure()
        self.sandbox_interrupt()
        self.busy_is_busy()


class RetentionChain(GrubChain):
    """The GRUB chain the VM suite's other Debian release gets (make
    test-vm; tests/vm/suites.py): the 30-run retention series (j) and the
    rollback of a rollback after it (k), retention_scenarios.py.

      1-3 debian  10 real apt runs a boot through the hook with the shipped
                  retention (SERIES_SPLIT); boot 3 makes the menu for real,
                  judges the series and runs `bootenv rollback`       (j, k)
      4   H29     / is the checkpoint taken before run 30; roll back again (k)
      5   debian  back, run 30's change there; done                       (k)
    """

    last_boot = 5

    def stage1(self) -> None:
        self.retention_1()

    def stage2(self) -> None:
        self.retention_2()

    def stage3(self) -> None:
        self.retention_3()

    def stage4(self) -> None:
        self.rollback_landed()

    def stage5(self) -> None:
        self.rollback_returned()

