"""The crash chain (SeaBIOS -> GRUB, the same disk): power cuts and kill -9
in the middle of bootenv's work, each followed by a REAL boot. After
every one the machine must come up on one whole BE, `bootenv list` and
`status` must work, `bootenv repair -y` must leave nothing to repair, and
the interrupted command must succeed when run again (issue 13).

  1 debian  refresh bootenv; `bootenv doctor` on this layout         (doc)
            create cp1; POWER CUT in `bootenv activate cp1` between
            the pool's bootfs and GRUB's default                     (p1)
  2 ?       check (p1): one whole BE booted; repair; activate cp1
            again, then back to the running BE; install hello 1.0,
            publish 2.0; POWER CUT in `bootenv dist-upgrade --in-place`
            after apt, before the checkpoint is marked               (p2)
  3 R       check (p2): R booted, dpkg consistent, the checkpoint
            named, repair, the dist-upgrade again; kill -9 in
            `bootenv destroy` of an origin after its dependant was
            promoted (k1); arm a trial of c whose bootenv-boot.service
            is killed at boot (k2)
  4 c       check (k2): the machine booted, the trial's residue
            repaired; done

A power cut is QEMU's `system_reset` (tests/vm/boots.py: POWER_CUT): the
step first writes its report, then runs the command with
BOOTENV_CRASH_AT=POINT and BOOTENV_CRASH_HOW=hang (bootenv/crash.py:
stop at POINT instead of dying), and once it hangs asks the host to cut
the power. What the cut interrupted is recorded in out/cut-N.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from apt_scenarios import AptScenarios
from step import BE_ROOT, OUT, Step, sh

POWER_CUT = "BOOTENV-VM-POWER-CUT"  # tests/vm/boots.py watches the console for it
CONSOLE = "/dev/ttyS0"
TRIAL_DROPIN = "/etc/systemd/system/bootenv-boot.service.d/vmtest-crash.conf"


class CrashChain(AptScenarios, Step):
    last_boot = 4

    def __init__(self, n: int):
        super().__init__(n)
        self.cut: tuple[str, str] | None = None  # (command, point) for after_report

    def loader_facts(self) -> None:
        self.facts["bootenv_env"] = sh("grub-editenv /boot/grub/bootenv.env list")["out"]
        self.facts["bootfs"] = sh("zpool get -H -o value bootfs rpool")["out"].strip()

    # ------------------------------------------------------------ shared checks

    def whole_machine(self, scenario: str, expect_running: set[str] | None = None) -> None:
        """What every crash must leave: booted on one whole BE, list and
        status working, the next boot an existing complete BE."""
        bes = {b["name"]: b for b in self.bes()}
        running = self.running
        self.check(scenario, running in bes, f"the machine booted a BE ({self.facts['root']})")
        if expect_running is not None:
            self.check(scenario, running in expect_running, f"it is one of {sorted(expect_running)} (is {running})")
        state = bes.get(running, {}).get("state")
        self.check(scenario, state in (None, "complete"), f"the running BE {running} is whole (state {state})")
        self.check(scenario, self.facts.get("status") is not None,
                   f"`bootenv status --json` works after the crash ({self.facts.get('status_error', '')[-300:]!r})")
        self.check(scenario, sh("bootenv list")["rc"] == 0, "`bootenv list` works after the crash")
        self.next_boot_whole(scenario, "after the crash")

    def next_boot_whole(self, scenario: str, when: str) -> None:
        st = json.loads(self.do("bootenv status --json")["out"])
        nxt = st.get("next_boot")
        bes = {b["name"]: b for b in self.bes()}
        self.check(scenario, nxt in bes and bes[nxt].get("state") in (None, "complete"),
                   f"{when}, the next boot {nxt} is an existing complete BE (BEs: "
                   f"{ {n: b.get('state') for n, b in bes.items()} })")

    def repaired(self, scenario: str) -> None:
        """repair -n changes nothing, repair -y succeeds, then nothing is
        left to repair and the next boot is still whole."""
        before = sh(f"zfs list -H -t all -o name -r {BE_ROOT}")["out"]
        dry = sh("bootenv repair -n")
        self.check(scenario, dry["rc"] == 0, f"`bootenv repair -n` works (exit {dry['rc']}: {(dry['out'] + dry['err'])[-400:]!r})")
        self.check(scenario, sh(f"zfs list -H -t all -o name -r {BE_ROOT}")["out"] == before, "repair -n changed no dataset")
        fix = sh("bootenv repair -y")
        self.check(scenario, fix["rc"] == 0, f"`bootenv repair -y` works (exit {fix['rc']}: {(fix['out'] + fix['err'])[-400:]!r})")
        again = sh("bootenv repair -n")
        self.check(scenario, again["rc"] == 0 and "nothing to repair" in (again["out"] + again["err"]).lower(),
                   f"after repair -y nothing is left to repair ({(again['out'] + again['err'])[-300:]!r})")
        self.next_boot_whole(scenario, "after repair")

    def cut_report(self, scenario: str) -> dict:
        path = f"{OUT}/cut-{self.n - 1}.json"
        cut = json.load(open(path)) if os.path.exists(path) else {}
        self.check(scenario, cut.get("reached") is True,
                   f"boot {self.n - 1}'s `{cut.get('command')}` reached {cut.get('point')} and hung there for the power cut "
                   f"(output {cut.get('output', '')[-300:]!r})")
        return cut

    # ------------------------------------------------------------ power cuts

    def power_cut_during(self, command: str, point: str) -> None:
        """After the report: run `command` until bootenv hangs at `point`,
        record it (out/cut-N.json, on the host's share), and ask the host
        to cut the power."""
        self.cut = (command, point)

    def after_report(self) -> None:
        if not self.cut:
            return
        command, point = self.cut
        log = f"/run/bootenv-vmtest-cut-{self.n}.log"
        env = dict(os.environ, BOOTENV_CRASH_AT=point, BOOTENV_CRASH_HOW="hang")
        with open(log, "w") as out:
            proc = subprocess.Popen(["bash", "-c", command], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        reached = False
        while time.monotonic() < deadline and proc.poll() is None:
            if "hanging at" in open(log, errors="replace").read():
                reached = True
                break
            time.sleep(0.5)
        output = open(log, errors="replace").read()
        with open(f"{OUT}/cut-{self.n}.json", "w") as f:
            json.dump({"command": command, "point": point, "reached": reached, "output": output[-4000:],
                       "exit": proc.poll()}, f)
        os.sync()  # the share's file, not the pool: the cut must still lose the pool's dirty state
        if not reached:
            print(f"BOOTENV-VMTEST: {command!r} never reached {point}; no power cut", flush=True)
            return
        with open(CONSOLE, "w") as console:
            console.write(f"\n{POWER_CUT}\n")
            console.flush()
        time.sleep(300)  # the host resets the machine now; this is never reached on a good run

    # ------------------------------------------------------------ the boots

    def stage1(self) -> None:
        self.refresh_bootenv()
        doc = sh("bootenv doctor --json")
        try:
            d = json.loads(doc["out"])
        except ValueError:
            d = {}
        self.check("doc", doc["rc"] == 0 and d.get("rollback_boots") is True,
                   f"`bootenv doctor` exits 0 on the test disk (exit {doc['rc']}: {doc['err'][-300:]!r})")
        self.check("doc", d.get("layout") == "single pool, /boot inside the BE", f"doctor names the layout ({d.get('layout')!r})")
        grub = [f for f in d.get("findings", []) if f["area"] == "GRUB"]
        self.check("doc", [f["verdict"] for f in grub] == ["ok"] and "ext4" in grub[0]["text"],
                   f"doctor: GRUB's home is the shared ext4 /boot/grub ({grub})")
        self.do("bootenv create cp1")
        self.power_cut_during("bootenv activate cp1", "grub-env")

    def stage2(self) -> None:
        self.cut_report("p1")
        self.whole_machine("p1", {"debian", "cp1"})
        self.repaired("p1")
        running = self.running
        self.do("bootenv activate cp1")  # the interrupted command, again
        self.next_boot_is("p1", "cp1")
        self.do(f"bootenv activate {running}")
        open(f"{OUT}/crash-running", "w").write(running + "\n")
        # (p2): hello 1.0 installed, 2.0 published: the dist-upgrade has work
        self.sources_aside()
        self.publish(("hello", "1.0"))
        self.do("apt-get install -y -q hello")
        self.publish(("hello", "2.0"))
        open(f"{OUT}/crash-before-upgrade", "w").write(json.dumps(sorted(b["name"] for b in self.bes())))
        self.power_cut_during("bootenv dist-upgrade --in-place -y", "mark-complete")

    def next_boot_is(self, scenario: str, name: str) -> None:
        nxt = json.loads(self.do("bootenv status --json")["out"]).get("next_boot")
        self.check(scenario, nxt == name, f"the command run again succeeds: the next boot is {name} (is {nxt})")

    def stage3(self) -> None:
        running = open(f"{OUT}/crash-running").read().strip()
        self.cut_report("p2")
        self.whole_machine("p2", {running})
        audit = sh("dpkg --audit")
        self.check("p2", audit["rc"] == 0 and not audit["out"].strip(), f"dpkg's database is consistent ({audit['out'][-300:]!r})")
        hello = self.version("hello")
        self.check("p2", hello in ("install ok installed 1.0", "install ok installed 2.0"), f"hello is installed whole ({hello!r})")
        before = set(json.loads(open(f"{OUT}/crash-before-upgrade").read()))
        new = [b for b in self.bes() if b["name"] not in before]
        self.check("p2", len(new) == 1, f"the interrupted dist-upgrade left its one checkpoint ({[(b['name'], b['state']) for b in new]})")
        self.repaired("p2")
        self.publish(("hello", "2.0"))  # the test repository lived in /run: gone with the power
        r = sh("bootenv dist-upgrade --in-place -y")
        self.check("p2", r["rc"] == 0, f"`bootenv dist-upgrade --in-place` run again succeeds (exit {r['rc']}: {(r['out'] + r['err'])[-300:]!r})")
        self.check("p2", self.version("hello") == "install ok installed 2.0", f"hello 2.0 now ({self.version('hello')!r})")
        self.sources_back()
        self.kill_in_destroy_of_origin()
        self.arm_killed_trial()

    def kill_in_destroy_of_origin(self) -> None:
        """(k1) destroy of a BE another was cloned from: bootenv promotes
        the dependant, then destroys; kill -9 right after the promotion."""
        self.do("bootenv create o")
        self.do("bootenv create c --from o")
        r = sh("BOOTENV_CRASH_AT=promote:after bootenv destroy -y o")
        self.check("k1", r["rc"] == -9 or r["rc"] == 137, f"bootenv was killed in the destroy (exit {r['rc']})")
        self.check("k1", sh("bootenv list")["rc"] == 0 and sh("bootenv status")["rc"] == 0, "list and status work after the kill")
        self.repaired("k1")
        r = sh("bootenv destroy -y o")
        gone = sh(f"zfs list -H -o name {BE_ROOT}/o")["rc"] != 0
        self.check("k1", (r["rc"] == 0 or "no boot environment" in r["err"]) and gone,
                   f"destroy o again: o is gone (exit {r['rc']}: {r['err'][-300:]!r})")
        c = {b["name"]: b for b in self.bes()}.get("c")
        self.check("k1", c is not None and c.get("state") in (None, "complete"), f"c, the dependant, is whole ({c})")

    def arm_killed_trial(self) -> None:
        """(k2) a trial boot of c whose bootenv-boot.service is killed at
        its first step."""
        os.makedirs(os.path.dirname(TRIAL_DROPIN), exist_ok=True)
        with open(TRIAL_DROPIN, "w") as f:
            f.write("[Service]\nEnvironment=BOOTENV_CRASH_AT=trial-boot-started\n")
        self.do("systemctl daemon-reload")
        # the drop-in must be in c too: c is cloned from the running BE now
        self.do("bootenv destroy -y c")
        self.do("bootenv create c")
        self.do("bootenv activate c --once")
        open(f"{OUT}/crash-default", "w").write(self.running + "\n")

    def stage4(self) -> None:
        default = open(f"{OUT}/crash-default").read().strip()
        self.check("k2", self.facts["units"]["bootenv-boot.service"] in ("failed", "inactive"),
                   f"bootenv-boot.service was killed in the trial boot ({self.facts['units']['bootenv-boot.service']})")
        self.whole_machine("k2", {"c", default})
        self.repaired("k2")
        sh(f"rm -f {TRIAL_DROPIN}; systemctl daemon-reload")
        self.next_action = "poweroff"
