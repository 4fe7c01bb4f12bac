"""Retention under real apt, and rollback of a rollback, on the booted
root-on-ZFS disk (the GRUB chain, chain_grub.py; issue 12):

  (j) 30 real apt operations (install, upgrade, remove of the test
      repository's rt0..rt9, 1 MiB of data per version) through the apt hook
      with the shipped retention (keep_auto 10, keep_min 3): after every
      one, the BE count stays within keep_auto plus what is not a candidate
      (manual, pinned, protected), and the pool's allocated space stops
      growing once retention prunes (the series (op, BEs, allocated) goes to
      out/retention-series.json and the report). The ops are spread over
      several boots (SERIES_SPLIT) so no boot nears its time budget.
  (k) `bootenv rollback` + reboot lands on the checkpoint taken before the
      last operation (rt's state before it), and a second `bootenv
      rollback` + reboot returns to the BE it came from (rpm-ostree #906).
"""

from __future__ import annotations

import json
import os
import random
import time

from apt_scenarios import APT_REPO, PRE_INVOKE_LOG, TEST_APT_CONF, TEST_APT_SETTINGS
from step import OUT, POOL, TREE, sh

PACKAGES = [f"rt{k}" for k in range(10)]
# op i: (what, the apt-get command, the package's dpkg state after it)
OPS = [op for pkg in PACKAGES for op in (
    (f"install {pkg} 1.0", f"apt-get install -y -q {pkg}=1.0", "1.0"),
    (f"upgrade {pkg} 2.0", f"apt-get install -y -q --only-upgrade {pkg}", "2.0"),
    (f"remove {pkg}", f"apt-get remove -y -q {pkg}", None),
)]
SERIES = f"{OUT}/retention-series.json"
KEEP_AUTO = 10  # the shipped default (contrib/bootenv.conf): the bound under test
AUTOMATIC = ("hook", "apt")
UPDATE_GRUB = "/usr/sbin/update-grub"
UPDATE_GRUB_STUB = "/var/tmp/bootenv-vmtest-update-grub"  # not /run: mounted noexec
UPDATE_GRUB_LOG = "/run/bootenv-vmtest/update-grub.log"
SERIES_SPLIT = ((0, 10), (10, 20), (20, 30))  # ops per boot: ~30 s an op, a boot well under half its budget
PAYLOAD = 512 * 1024  # random bytes per version, as hex: 1 MiB a file lz4 cannot shrink much


def _payload_deb(name: str, version: str):
    from tests.debs import Deb

    # seeded: /run is empty after a reboot, and the repository built again
    # there must hold the same packages
    data = random.Random(f"{name} {version}").randbytes(PAYLOAD).hex()
    return Deb(name, version, files={f"/usr/share/{name}/data-{version}": data,
                                     f"/usr/share/{name}/version": f"{version}\n"})


def allocated() -> int:
    return int(sh(f"zpool get -H -p -o value allocated {POOL}")["out"].strip())


class RetentionScenarios:
    """Mixed into a chain's Step (check, do, bes; AptScenarios' publish,
    sources_aside/back, version)."""

    def series(self) -> list[dict]:
        return json.load(open(SERIES)) if os.path.exists(SERIES) else []

    def retention_ops(self, first: int, last: int, stub: bool = True) -> None:
        """Ops first..last-1 of OPS through the hook, with the shipped
        retention; each one's (op, BEs, allocated, seconds) appended to the
        series. Op 0 publishes the repository (every version at once)."""
        import sys

        sys.path.insert(0, TREE)
        os.makedirs(os.path.dirname(PRE_INVOKE_LOG), exist_ok=True)
        self.do(f"install -m644 {TREE}/contrib/apt/80bootenv /etc/apt/apt.conf.d/80bootenv")
        with open(TEST_APT_CONF, "w") as f:
            f.write(TEST_APT_SETTINGS)
        conf = sh("grep -E '^[^#]*(keep_auto|keep_min|auto_prune|space_floor)' /etc/bootenv/bootenv.conf")["out"]
        self.check("j", conf.strip() == "", f"bootenv.conf keeps the shipped retention defaults (set there: {conf.strip()!r})")
        self.sources_aside()
        try:
            if first == 0 or not os.path.exists(f"{APT_REPO}/Packages"):
                self.do(f"rm -rf {APT_REPO}")
                self.publish(*[_payload_deb(p, v) for p in PACKAGES for v in ("1.0", "2.0")])
            else:
                self.do("apt-get update -q")
            series = self.series()
            if first == 0:
                series = [self.point(-1, "before", 0.0)]
            if stub:
                self.stub_update_grub()
            try:
                self.run_ops(series, first, last, stub)
            finally:
                if stub:
                    self.do(f"umount {UPDATE_GRUB}")
            self.facts["retention_series"] = series
        finally:
            self.sources_back()

    def stub_update_grub(self) -> None:
        """update-grub costs ~60 s a run under TCG (measured; one per hook run
        since Bootloader.batch): 30 of them would not fit the chain. During
        the series it is a stub that counts its calls (the menu update's own
        cost at 1 and 100 BEs: bench/create_real.py); the menu is made for
        real once after it (retention_boot)."""
        os.makedirs(os.path.dirname(UPDATE_GRUB_LOG), exist_ok=True)
        with open(UPDATE_GRUB_STUB, "w") as f:
            f.write(f"#!/bin/sh\necho update-grub >>{UPDATE_GRUB_LOG}\n")
        os.chmod(UPDATE_GRUB_STUB, 0o755)
        self.do(f"mount --bind {UPDATE_GRUB_STUB} {UPDATE_GRUB}")

    def run_ops(self, series: list[dict], first: int, last: int, stub: bool = True) -> None:
        """Ops first..last-1, each with its checks and point of the series."""
        for i in range(first, last):
            what, cmd, state = OPS[i]
            open(UPDATE_GRUB_LOG, "w").close()
            start = time.monotonic()
            r = self.do(cmd)
            took = time.monotonic() - start
            if stub:
                menus = len(open(UPDATE_GRUB_LOG).read().splitlines())
                self.check("j", menus == 1, f"op {i + 1}: one menu update for the checkpoint and its retention ({menus} update-grub runs)")
            pkg = what.split()[1]
            got = self.version(pkg)
            want = f"install ok installed {state}" if state else ""
            self.check("j", (got == want) if state else "installed" not in got,
                       f"op {i + 1} ({what}): dpkg says {got!r}")
            self.check("j", "checkpoint " in r["out"] + r["err"], f"op {i + 1}: the hook took a checkpoint")
            point = self.point(i, what, took, r["out"] + r["err"])
            series.append(point)
            self.check("j", point["bes"] <= point["bound"],
                       f"op {i + 1} ({what}): {point['bes']} BEs <= keep_auto {KEEP_AUTO} + {point['bound'] - KEEP_AUTO} "
                       f"not candidates ({point['automatic']} automatic; allocated {point['allocated'] / 2**20:.1f} MiB; {took:.0f} s)")
            with open(SERIES, "w") as f:
                json.dump(series, f, indent=1)

    def point(self, i: int, what: str, seconds: float, output: str = "") -> dict:
        """The state after op i: BE count, the bound, allocated, and what
        retention said."""
        bes = self.bes()
        # not candidates: manual, pinned, running, next boot (what retention never takes)
        fixed = [b for b in bes if b["kind"] not in AUTOMATIC or b["keep"] or b["running"] or b["active"]]
        said = [l for l in output.splitlines() if "retention" in l]
        return {"op": i + 1, "what": what, "bes": len(bes), "automatic": sum(b["kind"] in AUTOMATIC for b in bes),
                "bound": KEEP_AUTO + len(fixed), "allocated": allocated(), "seconds": round(seconds, 1),
                "retention": said[-1] if said else "", "names": [b["name"] for b in bes]}

    def retention_verdict(self) -> None:
        """Allocated space bounded: once retention prunes (op KEEP_AUTO on),
        the last third of the series grows no more than the first third
        did before any prune, plus slack for logs and metadata."""
        s = [p for p in self.series() if p["op"] >= 1]
        self.check("j", len(s) == len(OPS), f"all {len(OPS)} apt operations ran ({len(s)} in the series)")
        if len(s) != len(OPS):
            return
        first = s[9]["allocated"] - self.series()[0]["allocated"]  # ops 1-10: nothing pruned yet
        last = s[29]["allocated"] - s[19]["allocated"]  # ops 21-30: every op prunes one
        self.check("j", last <= first / 2 + 4 * 2**20,
                   f"allocated is bounded: ops 21-30 grew it {last / 2**20:.1f} MiB, ops 1-10 {first / 2**20:.1f} MiB "
                   f"(at most half plus 4 MiB); max BEs {max(p['bes'] for p in s)}")
        pruned = [p for p in s if "destroyed" in p["retention"]]
        self.check("j", len(pruned) >= 15, f"automatic retention destroyed old checkpoints in {len(pruned)} of the 30 ops")
        print("RETENTION SERIES op, what, BEs, automatic, allocated MiB, seconds:")
        for p in self.series():
            print(f"  {p['op']:>3} {p['what']:<16} {p['bes']:>3} {p['automatic']:>3} {p['allocated'] / 2**20:>8.1f} {p['seconds']:>6.1f}")

    def retention_boot(self, k: int) -> None:
        """The k-th boot of the series (SERIES_SPLIT); the last one makes the
        menu for real, judges the series and rolls back."""
        if self.n == 1:  # a debugging run (BOOTENV_VM_ONLY): the code from the tree first
            self.refresh_bootenv()
        self.retention_ops(*SERIES_SPLIT[k])
        if k == len(SERIES_SPLIT) - 1:
            self.do("update-grub")
            self.retention_verdict()
            self.rollback_first()

    def rollback_quick(self) -> None:
        """BOOTENV_VM_ONLY=rollback_quick,rollback_landed,rollback_returned:
        (k) after 3 apt runs instead of 30 (3 boots, to debug the rollbacks)."""
        self.refresh_bootenv()
        self.rollback_after(3)

    def rollback_after(self, runs: int) -> None:
        """(k) in the GRUB chain: `runs` apt runs through the hook, the menu
        made for real once, then the first `bootenv rollback`."""
        self.retention_ops(0, runs)
        self.do("update-grub")
        self.rollback_first()

    def retention_1(self) -> None:
        self.retention_boot(0)

    def retention_2(self) -> None:
        self.retention_boot(1)

    def retention_3(self) -> None:
        self.retention_boot(2)

    # ------------------------------------------------------------ (k)

    def rollback_first(self) -> None:
        """After the series on the running BE R: `bootenv rollback`; the
        next boot must run the checkpoint taken before the last op."""
        last = self.series()[-1]
        mine = [b for b in self.bes() if b["origin_be"] == self.running and b["kind"] == "hook"]
        newest = max(mine, key=lambda b: b["generation"] or 0) if mine else None
        r = self.do("bootenv rollback")
        target = self.bootenv_status().get("next_boot")
        self.check("k", newest is not None and target == newest["name"],
                   f"rollback from {self.running} arms the newest checkpoint taken from it "
                   f"({newest and newest['name']}); next boot {target}: {r['out'].strip().splitlines()[-1:]}")
        json.dump({"from": self.running, "to": target, "last_op": last["op"]}, open(f"{OUT}/rollback.json", "w"))

    def rollback_landed(self) -> None:
        """Boot after the first rollback: on its target, rt's state is
        before the last op; roll back again."""
        rb = json.load(open(f"{OUT}/rollback.json"))
        self.check("k", self.running == rb["to"], f"after 'bootenv rollback' and a reboot, / is {rb['to']} (it is {self.facts['root']})")
        what, _cmd, _state = OPS[rb["last_op"] - 1]
        before = OPS[rb["last_op"] - 2][2]  # the package's state before the last op
        got = self.version(what.split()[1])
        self.check("k", got == f"install ok installed {before}",
                   f"the rolled-back BE has {what.split()[1]} as before op {rb['last_op']} ({what}): dpkg {got!r}")
        r = self.do("bootenv rollback")
        target = self.bootenv_status().get("next_boot")
        self.check("k", target == rb["from"], f"a second rollback arms {rb['from']} again (next boot {target}): "
                   f"{r['out'].strip().splitlines()[-1:]}")

    def rollback_returned(self) -> None:
        rb = json.load(open(f"{OUT}/rollback.json"))
        self.check("k", self.running == rb["from"], f"after the second rollback and a reboot, / is {rb['from']} again (it is {self.facts['root']})")
        what = OPS[rb["last_op"] - 1][0]
        got = self.version(what.split()[1])
        self.check("k", "installed" not in got if OPS[rb["last_op"] - 1][2] is None else got.endswith(OPS[rb["last_op"] - 1][2]),
                   f"and the last op ({what}) is there again: dpkg {got!r}")

    # ------------------------------------------------------------ measuring

    def measure_apt_op(self) -> None:
        """BOOTENV_VM_ONLY=measure_apt_op: what one op costs with the real
        update-grub (3 ops, timed; measured ~100 s each) and update-grub
        alone (~60 s)."""
        self.refresh_bootenv()
        start = time.monotonic()
        self.do("update-grub")
        self.facts["update_grub_seconds"] = round(time.monotonic() - start, 1)
        self.retention_ops(0, 3, stub=False)

    def bench_create(self) -> None:
        """BOOTENV_VM_ONLY=bench_create (with BOOTENV_VM_BOOT_TIMEOUT=2400:
        two tries take ~15 min under TCG): bench/create_real.py with the
        tree's bootenv."""
        if self.n == 1:
            self.refresh_bootenv()
        r = self.do(f"python3 {TREE}/bench/create_real.py --tries 2")
        self.facts["bench_create"] = r["out"]
