#!/usr/bin/env python3
"""One boot's step of the real-boot scenarios (tests/vm/test_boots.py).

Runs in the root-on-ZFS guest (bootenv-vmtest.service, late in every boot,
after bootenv-confirm.service), from the share: /mnt/host/boot-number is
the boot's number (written by tests/vm/boots.py before each qemu start).
Each boot records its facts (the root dataset, `bootenv status --json`,
the GRUB environments, the bootenv units' states and journal), checks
what the previous boot armed, arms the next scenario, and writes
/mnt/host/out/boot-N/report.json plus next-action (reboot | poweroff).

The chain (one run, 8 boots; boot 6 never comes up, by design):
  1 debian  refresh bootenv from the tree; create x; activate x           (a)
  2 x       check (a); create g; activate g --once                        (d)
  3 g       trial: confirm ran and passed -> g is the default; create hb
            (health check fails); activate hb --once                      (b)
  4 hb      trial: confirm failed -> hb failed, next boot g
  5 g       check (b) back on g, (d) g stays; create dead (its init exits);
            activate dead --once                                          (c)
  6 dead    never comes up (PID 1 exits -> panic -> reboot -> qemu ends)
  7 g       check (c): back on g, dead marked failed; `bootenv install
            --in-place -y hello` (a local repository is the only apt source):
            a checkpoint; hello on g, not in the checkpoint; activate the
            checkpoint                                                    (e)
  8 cp      check (e): / is the checkpoint, hello is not installed, g
            still has it; done
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

SHARE = "/mnt/host"
TREE = f"{SHARE}/tree"
OUT = f"{SHARE}/out"
POOL = "rpool"
BE_ROOT = "rpool/ROOT"
LAST_BOOT = 8
# (e): the test repository, outside every BE (like tests/vm/aptsys.py)
APT_REPO = "/run/bootenv-vmtest/repo"
APT_ASIDE = ".bootenv-vmtest-aside"


def sh(cmd: str, check: bool = False) -> dict:
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    r = {"cmd": cmd, "rc": p.returncode, "out": p.stdout, "err": p.stderr}
    print(f"$ {cmd}\n{p.stdout}{p.stderr}[rc {p.returncode}]", flush=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed (exit {p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return r


class Step:
    def __init__(self, n: int):
        self.n = n
        self.checks: list[dict] = []
        self.actions: list[dict] = []
        self.facts: dict = {}
        self.next_action = "reboot"

    def check(self, scenario: str, ok: bool, what: str) -> None:
        self.checks.append({"scenario": scenario, "ok": bool(ok), "what": what, "boot": self.n})
        print(f"CHECK {scenario} {'PASS' if ok else 'FAIL'}: {what}", flush=True)

    def do(self, cmd: str) -> dict:
        r = sh(cmd, check=False)
        self.actions.append(r)
        if r["rc"] != 0:
            raise RuntimeError(f"{cmd!r} failed (exit {r['rc']}): {(r['err'] or r['out']).strip()[-800:]}")
        return r

    # ------------------------------------------------------------ facts

    def gather(self) -> None:
        f = self.facts
        f["root"] = sh("findmnt -n -o SOURCE /")["out"].strip()
        f["uptime"] = sh("cut -d' ' -f1 /proc/uptime")["out"].strip()
        st = sh("bootenv status --json")
        try:
            f["status"] = json.loads(st["out"])
        except ValueError:
            f["status"] = None
            f["status_error"] = st["out"] + st["err"]
        f["status_text"] = sh("bootenv status")["out"]
        f["list"] = sh("bootenv list")["out"]
        f["bootenv_env"] = sh("grub-editenv /boot/grub/bootenv.env list")["out"]
        f["grubenv"] = sh("grub-editenv /boot/grub/grubenv list")["out"]
        f["units"] = {u: sh(f"systemctl is-active {u}")["out"].strip()
                      for u in ("bootenv-boot.service", "bootenv-confirm.service")}
        f["failed_units"] = sh("systemctl --failed --no-legend --plain")["out"]
        f["journal"] = sh("journalctl -b --no-pager -o cat -u bootenv-boot.service -u bootenv-confirm.service")["out"][-6000:]
        f["props"] = sh(f"zfs get -H -o name,property,value -s local,received all {BE_ROOT} -r | grep org.bootenv")["out"]

    @property
    def running(self) -> str:
        return self.facts["root"].removeprefix(BE_ROOT + "/")

    def status(self, key: str):
        return (self.facts.get("status") or {}).get(key)

    def verdict(self, be: str) -> str | None:
        v = (self.status("verdicts") or {}).get(be)
        return v and v.get("verdict")

    def once_pending(self, now: bool = False) -> bool:
        """A non-empty bootenv_once in GRUB's bootenv.env: as gathered at the
        start of this boot, or (`now`) as it is after this step's actions."""
        text = sh("grub-editenv /boot/grub/bootenv.env list")["out"] if now else self.facts["bootenv_env"]
        return any(l.startswith("bootenv_once=") and l.strip() != "bootenv_once=" for l in text.splitlines())

    # ------------------------------------------------------------ stages

    def refresh_bootenv(self) -> None:
        """The code under test, from the share, into this BE (the BEs the
        scenarios create are clones of it)."""
        self.do(f"rsync -a --delete --exclude=__pycache__ {TREE}/bootenv/ /opt/bootenv-src/bootenv/")
        self.do(f"install -m644 {TREE}/contrib/systemd/*.service /etc/systemd/system/")
        self.do(f"install -m755 {TREE}/contrib/grub.d/42_bootenv /etc/grub.d/42_bootenv")
        self.do("systemctl daemon-reload && systemctl enable bootenv-boot.service bootenv-confirm.service")
        # No update-grub here: `bootenv create` runs it (~50 s under TCG each).

    def stage1(self) -> None:
        self.check("a", self.running == "debian", f"boot 1 runs the disk's own BE debian (root {self.facts['root']})")
        self.refresh_bootenv()
        self.do("bootenv create x")
        self.do("bootenv activate x")
        self.do("grep -n 'bootenv' /boot/grub/grub.cfg | tail -20")

    def stage2(self) -> None:
        self.check("a", self.running == "x", f"after 'activate x' and a reboot, / is rpool/ROOT/x (it is {self.facts['root']})")
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
        self.do("bootenv create hb")
        where = self.do("bootenv mount hb")["out"].strip().splitlines()[-1]
        self.do(f"mkdir -p {where}/etc/bootenv/health.d && printf '#!/bin/sh\\necho vmtest: failing on purpose >&2\\nexit 3\\n' >{where}/etc/bootenv/health.d/50-vmtest-fail && chmod +x {where}/etc/bootenv/health.d/50-vmtest-fail")
        self.do("bootenv unmount hb")
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
        self.do("bootenv create dead")
        where = self.do("bootenv mount dead")["out"].strip().splitlines()[-1]
        # PID 1 exits at once: the kernel panics (panic=5 -> reboot -> qemu exits).
        self.do(f"rm -f {where}/sbin/init && printf '#!/bin/sh\\necho BOOTENV-VMTEST: dead init, exiting\\nexit 1\\n' >{where}/sbin/init && chmod +x {where}/sbin/init")
        self.do("bootenv unmount dead")
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
        self.in_place_upgrade()

    # (e) in place upgrade, then roll back by booting the checkpoint

    def sources_aside(self, root: str = "") -> None:
        """The BE's own apt sources aside; the test repository the only source."""
        self.do(f"cd {root}/etc/apt && if [ -e sources.list ]; then mv sources.list sources.list{APT_ASIDE}; fi && "
                f"for f in sources.list.d/*; do [ -e \"$f\" ] || continue; case $f in *{APT_ASIDE}) ;; *) mv \"$f\" \"$f{APT_ASIDE}\";; esac; done && "
                f"echo 'deb [trusted=yes] file:{APT_REPO} ./' >sources.list")

    def sources_back(self, root: str = "") -> None:
        self.do(f"cd {root}/etc/apt && rm -f sources.list && "
                f"for f in sources.list{APT_ASIDE} sources.list.d/*{APT_ASIDE}; do [ -e \"$f\" ] || continue; mv \"$f\" \"${{f%{APT_ASIDE}}}\"; done")

    def bes(self) -> list[dict]:
        return json.loads(self.do("bootenv list --json")["out"])

    def in_place_upgrade(self) -> None:
        sys.path.insert(0, TREE)
        from pathlib import Path
        from tests.debs import Deb, build_repo
        self.check("e", sh("dpkg -s hello")["rc"] != 0, "hello is not installed on g before the upgrade")
        before = {b["name"] for b in self.bes()}
        self.do(f"rm -rf {APT_REPO}")
        build_repo(Path(APT_REPO), [Deb("hello", "1.0", files={"/usr/share/hello/version": "1.0\n"})])
        self.sources_aside()
        try:
            self.do("bootenv install --in-place -y hello")
        finally:
            self.sources_back()
        new = [b for b in self.bes() if b["name"] not in before]
        self.check("e", len(new) == 1, f"install --in-place made one new BE (new: {[b['name'] for b in new]})")
        if len(new) != 1:
            return
        cp = new[0]
        self.facts["checkpoint"] = cp
        open(f"{OUT}/checkpoint", "w").write(cp["name"] + "\n")
        self.check("e", cp["kind"] == "apt" and cp["state"] == "complete",
                   f"the checkpoint {cp['name']} is kind=apt, state=complete (kind {cp['kind']}, state {cp['state']})")
        self.check("e", "install" in (cp["title"] or "") and "hello" in (cp["title"] or ""),
                   f"the checkpoint's title names the command (title {cp['title']!r})")
        v = sh("dpkg-query -W -f '${Status} ${Version}' hello")["out"]
        self.check("e", v == "install ok installed 1.0", f"hello 1.0 is installed on the running g (dpkg: {v!r})")
        self.check("e", sh("cat /usr/share/hello/version")["out"] == "1.0\n", "hello's file is on the running g")
        where = self.do(f"bootenv mount {cp['name']}")["out"].strip().splitlines()[-1]
        try:
            st = open(f"{where}/var/lib/dpkg/status").read()
            self.check("e", "\nPackage: hello\n" not in "\n" + st and not os.path.exists(f"{where}/usr/share/hello/version"),
                       f"the checkpoint {cp['name']} (mounted at {where}) does not have hello")
        finally:
            self.do(f"bootenv unmount {cp['name']}")
        self.do(f"bootenv activate {cp['name']}")
        nxt = json.loads(self.do("bootenv status --json")["out"]).get("next_boot")
        self.check("e", nxt == cp["name"], f"status: the next boot is the checkpoint {cp['name']} (is {nxt})")

    def stage8(self) -> None:
        cp = open(f"{OUT}/checkpoint").read().strip()
        self.check("e", self.facts["root"] == f"{BE_ROOT}/{cp}",
                   f"after 'activate {cp}' and a reboot, / is the checkpoint {BE_ROOT}/{cp} (it is {self.facts['root']})")
        r = sh("dpkg -s hello")
        self.check("e", r["rc"] != 0, f"hello is not installed after the rollback (dpkg -s hello: rc {r['rc']})")
        self.check("e", not os.path.exists("/usr/share/hello/version"), "hello's file is gone after the rollback")
        # the checkpoint was taken while the test repository was the only source
        self.sources_back()
        self.do("cat /etc/apt/sources.list 2>/dev/null; ls /etc/apt/sources.list.d/")
        where = self.do("bootenv mount g")["out"].strip().splitlines()[-1]
        try:
            v = sh(f"dpkg-query --admindir={where}/var/lib/dpkg -W -f '${{Status}} ${{Version}}' hello")["out"]
            self.check("e", v == "install ok installed 1.0", f"g, where hello was installed, still has hello 1.0 (dpkg: {v!r})")
        finally:
            self.do("bootenv unmount g")
        self.next_action = "poweroff"


def main() -> int:
    n = int(open(f"{SHARE}/boot-number").read().strip())
    outdir = f"{OUT}/boot-{n}"
    os.makedirs(outdir, exist_ok=True)
    os.environ["PATH"] = "/usr/local/bin:" + os.environ.get("PATH", "")
    step = Step(n)
    error = None
    try:
        step.gather()
        getattr(step, f"stage{n}", lambda: None)()
    except Exception:
        error = traceback.format_exc()
        print(error, flush=True)
        step.next_action = "poweroff"
    if n >= LAST_BOOT:
        step.next_action = "poweroff"
    report = {"boot": n, "time": time.time(), "facts": step.facts, "checks": step.checks,
              "actions": step.actions, "error": error, "next_action": step.next_action}
    with open(f"{outdir}/report.json", "w") as f:
        json.dump(report, f, indent=2)
    with open(f"{OUT}/next-action", "w") as f:
        f.write(step.next_action + "\n")
    if step.next_action == "poweroff":
        open(f"{OUT}/done", "w").write(f"{n}\n")
    os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
