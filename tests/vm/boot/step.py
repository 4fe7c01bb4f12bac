#!/usr/bin/env python3
"""One boot's step of the real-boot chains (tests/vm/test_boots.py).

Runs in the root-on-ZFS guest (bootenv-vmtest.service, late in every boot,
after bootenv-confirm.service), from the share: /mnt/host/chain names the
chain (grub and retention: chain_grub.py, systemd-boot: chain_sdboot.py,
crash: chain_crash.py, bpool and ubuntu: chain_bpool.py, grubhome:
chain_grubhome.py) and
/mnt/host/boot-number the boot (both written by tests/vm/boots.py before
each qemu start). Each boot records its facts (the root dataset,
`bootenv status --json`, the bootloader's state, the bootenv units' states
and journal), checks what the previous boot armed, arms the next scenario,
and writes /mnt/host/out/boot-N/report.json plus next-action (reboot |
poweroff). This module is what every chain shares.
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
INSTALLED_DEB = "/var/lib/bootenv-vm/installed-deb.sha256"  # written by guest-run.sh, copied onto the root disk


def sh(cmd: str, check: bool = False) -> dict:
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    r = {"cmd": cmd, "rc": p.returncode, "out": p.stdout, "err": p.stderr}
    print(f"$ {cmd}\n{p.stdout}{p.stderr}[rc {p.returncode}]", flush=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed (exit {p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return r


class Step:
    """One boot of a chain: subclasses define stage1..stageN (N = last_boot)
    and may add bootloader facts in `loader_facts`."""

    last_boot = 1

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
        f["units"] = {u: sh(f"systemctl is-active {u}")["out"].strip()
                      for u in ("bootenv-boot.service", "bootenv-confirm.service")}
        f["failed_units"] = sh("systemctl --failed --no-legend --plain")["out"]
        f["journal"] = sh("journalctl -b --no-pager -o cat -u bootenv-boot.service -u bootenv-confirm.service")["out"][-6000:]
        f["props"] = sh(f"zfs get -H -o name,property,value -s local,received all {BE_ROOT} -r | grep org.bootenv")["out"]
        self.loader_facts()

    def loader_facts(self) -> None:
        """The bootloader's own state, into self.facts (a chain's business)."""

    def after_report(self) -> None:
        """Run once this boot's report and next-action are written and
        synced: what must not stop the report from being kept (a power cut,
        chain_crash.py)."""

    @property
    def running(self) -> str:
        return self.facts["root"].removeprefix(BE_ROOT + "/")

    def status(self, key: str):
        return (self.facts.get("status") or {}).get(key)

    def verdict(self, be: str) -> str | None:
        v = (self.status("verdicts") or {}).get(be)
        return v and v.get("verdict")

    def bes(self) -> list[dict]:
        return json.loads(self.do("bootenv list --json")["out"])

    # ------------------------------------------------------------ actions

    def refresh_bootenv(self) -> None:
        """The run's bootenv .deb (boots.py put it in the share's debs/),
        installed into this BE with apt as a user installs it (the BEs the
        scenarios create are clones of it): /usr/bin/bootenv, the units and
        /etc/grub.d/42_bootenv all come from the package. --reinstall: the
        disk was built with a .deb of the same version; confold: a conffile
        edited on the disk stays (none is). The package's postinst runs
        update-grub (~50 s under TCG) and daemon-reload; its apt hook is
        switched off for this one apt run. Skipped when this BE holds the
        very same .deb already (its sha256, INSTALLED_DEB)."""
        import glob

        debs = sorted(glob.glob(f"{SHARE}/debs/bootenv_*_all.deb"))
        if len(debs) != 1:
            raise RuntimeError(f"expected one bootenv .deb in {SHARE}/debs, found {debs}")
        deb = f"/run/{os.path.basename(debs[0])}"  # apt's _apt user cannot read the 9p share
        self.do(f"cp {debs[0]} {deb}")
        # A root disk built in this run (a fresh machine: CI) holds this very
        # file, installed by guest-run.sh with apt: the reinstall, ~3.5 min a
        # chain with its postinst's update-grub, would change nothing.
        same = sh(f"test \"$(sha256sum <{deb} | cut -d' ' -f1)\" = \"$(cat {INSTALLED_DEB} 2>/dev/null)\"")
        if same["rc"] != 0:
            self.do("BOOTENV_HOOK=off DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "
                    "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + deb)
            self.do(f"sha256sum <{deb} | cut -d' ' -f1 >{INSTALLED_DEB}")
        self.facts["deb_reinstalled"] = same["rc"] != 0
        # What runs is what the .deb holds (not a leftover of the disk build).
        self.do(f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./usr/lib/python3/dist-packages/bootenv/engine.py"
                " | cmp - /usr/lib/python3/dist-packages/bootenv/engine.py")
        self.do("test \"$(command -v bootenv)\" = /usr/bin/bootenv && dpkg -S /etc/grub.d/42_bootenv "
                "/lib/systemd/system/bootenv-boot.service /lib/systemd/system/bootenv-confirm.service")
        self.do("systemctl is-enabled bootenv-boot.service bootenv-confirm.service")
        # No update-grub here beyond the postinst's: `bootenv create` runs it.

    def with_mounted(self, be: str, use):
        """`use(path)` with BE `be` mounted at path (by bootenv); its result."""
        where = self.do(f"bootenv mount {be}")["out"].strip().splitlines()[-1]
        try:
            return use(where)
        finally:
            self.do(f"bootenv unmount {be}")

    def create_changed(self, be: str, change: str) -> None:
        """Create `be` and run the shell command `change` on it mounted
        ({where} in it is the mount point)."""
        self.do(f"bootenv create {be}")
        self.with_mounted(be, lambda where: self.do(change.format(where=where)))

    def create_failing_health(self, be: str) -> None:
        """Create `be` with a health check that always fails."""
        check = "{where}/etc/bootenv/health.d/50-vmtest-fail"
        self.create_changed(be, "mkdir -p {where}/etc/bootenv/health.d && "
                            f"printf '#!/bin/sh\\necho vmtest: failing on purpose >&2\\nexit 3\\n' >{check} && chmod +x {check}")

    def create_dead(self, be: str) -> None:
        """Create `be` whose PID 1 exits at once: the kernel panics
        (panic=5 -> reboot -> qemu exits): a BE that never comes up."""
        self.create_changed(be, "rm -f {where}/sbin/init && printf '#!/bin/sh\\necho BOOTENV-VMTEST: dead init, exiting\\nexit 1\\n' "
                            ">{where}/sbin/init && chmod +x {where}/sbin/init")


def chain_class(name: str) -> type[Step]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if name == "grub":
        from chain_grub import GrubChain

        return GrubChain
    if name == "retention":
        from chain_grub import RetentionChain

        return RetentionChain
    if name == "systemd-boot":
        from chain_sdboot import SystemdBootChain

        return SystemdBootChain
    if name == "crash":
        from chain_crash import CrashChain

        return CrashChain
    if name == "bpool":
        from chain_bpool import BootPoolChain

        return BootPoolChain
    if name == "ubuntu":
        from chain_bpool import UbuntuChain

        return UbuntuChain
    if name == "grubhome":
        from chain_grubhome import GrubHomeChain

        return GrubHomeChain
    raise RuntimeError(f"unknown boot chain {name!r}")


def main() -> int:
    n = int(open(f"{SHARE}/boot-number").read().strip())
    outdir = f"{OUT}/boot-{n}"
    os.makedirs(outdir, exist_ok=True)
    os.environ["PATH"] = "/usr/local/bin:" + os.environ.get("PATH", "")
    error = None
    step = None
    try:
        step = chain_class(open(f"{SHARE}/chain").read().strip())(n)
        step.gather()
        only = open(f"{SHARE}/only").read().strip() if os.path.exists(f"{SHARE}/only") else ""
        if only:  # a debugging run (boots.py BOOTENV_VM_ONLY=M1,M2,...): boot N runs method N
            methods = only.split(",")
            step.last_boot = len(methods)
            getattr(step, methods[n - 1])()
        else:
            getattr(step, f"stage{n}", lambda: None)()
    except Exception:
        error = traceback.format_exc()
        print(error, flush=True)
    step = step or Step(n)
    if error or n >= step.last_boot:
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
    if not error:
        try:
            step.after_report()
        except Exception:  # the report is written: say it on the console only
            print(traceback.format_exc(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
