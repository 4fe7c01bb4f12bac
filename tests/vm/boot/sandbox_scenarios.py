"""The sandbox on a BOOTED system (issue 9), in the GRUB chain: systemd,
systemd-udevd and the other services with mount namespaces of their own
are up, which is where a sandbox's mounts used to leak (a copy of the clone
kept in udevd's namespace: "dataset is busy", the failed clone never
destroyed). Every check scans every /proc/PID/mountinfo, not just ours.

  (h) sandbox: a successful `bootenv dist-upgrade -s` (hello N -> N+1 in
      the clone), a failing postinst (`install -s broken`: clone gone), and
      Ctrl-C while a postinst runs (exit 130, clone gone); while the
      sandbox runs, only bootenv's own namespace has the clone mounted;
      afterwards no process anywhere has a BE other than / mounted
  (i) busy is busy: a clone mounted the old way (in the host's namespace,
      /dev /proc /sys /run rbound in, made slaves, then unmounted) stays
      mounted in the services' namespaces; `bootenv destroy` refuses naming
      them (pid, command, unit) and how to release them; once released,
      it succeeds. The services found are the evidence of the old leak.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from step import BE_ROOT, OUT, TREE, sh

STATE_DIR = "/run/bootenv-vmtest"  # in /run: the sandbox binds it into the chroot
SLOW_STARTED = f"{STATE_DIR}/slow-postinst-started"


def _debs():
    sys.path.insert(0, TREE)
    from tests.debs import Deb

    broken = Deb("broken", "1.0", files={"/usr/share/broken/file": "x\n"},
                 postinst="echo 'broken: postinst fails on purpose' >&2\nexit 1")
    slow = Deb("slow", "1.0", files={"/usr/share/slow/file": "slow\n"},
               postinst=f"touch {SLOW_STARTED}\nsleep 300")
    return broken, slow


def zfs_mounts_everywhere(under: str = BE_ROOT) -> dict[str, list[dict]]:
    """Every ZFS mount of a dataset under `under`, in every mount namespace:
    source -> [{ns, pid, comm, unit, mountpoint}] (one pid per namespace)."""
    seen_ns: set[str] = set()
    found: dict[str, list[dict]] = {}
    for entry in sorted((e for e in os.listdir("/proc") if e.isdigit()), key=int):
        try:
            ns = os.readlink(f"/proc/{entry}/ns/mnt")
            if ns in seen_ns:
                continue
            text = open(f"/proc/{entry}/mountinfo").read()
            comm = open(f"/proc/{entry}/comm").read().strip()
            cgroup = open(f"/proc/{entry}/cgroup").read().strip().split("/")
            unit = next((c for c in reversed(cgroup) if c.endswith(".service")), "")
        except OSError:
            continue
        seen_ns.add(ns)
        for line in text.splitlines():
            fields = line.split(" ")
            try:
                sep = fields.index("-", 6)
            except ValueError:
                continue
            fstype, source = fields[sep + 1], fields[sep + 2]
            if fstype == "zfs" and (source == under or source.startswith(under + "/")):
                found.setdefault(source, []).append(
                    {"ns": ns, "pid": int(entry), "comm": comm, "unit": unit, "mountpoint": fields[4]})
    return found


class SandboxScenarios:
    """Mixed into the GRUB chain's Step (check, do, bes, publish,
    sources_aside/back, version from AptScenarios)."""

    def root_datasets(self) -> set[str]:
        root = self.facts["root"]
        return {d for d in zfs_mounts_everywhere() if d == root or d.startswith(root + "/")}

    def strays(self) -> dict[str, list[dict]]:
        """BE mounts other than the running BE's, anywhere."""
        running = self.root_datasets()
        return {d: w for d, w in zfs_mounts_everywhere().items() if d not in running}

    def check_no_strays(self, scenario: str, when: str) -> None:
        left = self.strays()
        self.check(scenario, not left, f"{when}: no process in any mount namespace has a BE mounted other than / "
                                       f"(found {json.dumps(left)})")

    # ------------------------------------------------------------ (h)

    def with_sandbox_repo(self, run) -> None:
        """`run()` with the test repository as the only apt source: hello
        one version newer than the running BE's, broken, slow."""
        os.makedirs(STATE_DIR, exist_ok=True)
        self.sources_aside()
        try:
            if "installed" not in self.version("hello"):  # a chain that starts here: a hello to upgrade
                self.publish(("hello", "1.0"))
                self.do("BOOTENV_APT=1 apt-get install -y -q hello")  # no hook checkpoint for the set-up
            self.base = self.version("hello").rsplit(" ", 1)[-1]
            self.newer = f"{int(float(self.base)) + 1}.0"
            broken, slow = _debs()
            self.publish(("hello", self.newer), broken, slow)
            run()
        finally:
            self.sources_back()

    def sandbox_upgrade_and_failure(self) -> None:
        """(h), first half: a good sandbox (kept for (i)), a failing one."""
        def run():
            self.check_no_strays("h", "before the sandboxes")
            self.sandbox_upgrade_ok(self.base, self.newer)
            self.sandbox_failing_postinst()
        self.with_sandbox_repo(run)

    def sandbox_interrupt(self) -> None:
        """(h), second half: Ctrl-C in the middle of a sandbox."""
        self.with_sandbox_repo(self.sandbox_ctrl_c)

    def sandbox_upgrade_ok(self, base: str, newer: str) -> None:
        before = {b["name"] for b in self.bes()}
        r = sh("bootenv dist-upgrade -s -y")
        new = self.new_bes(before)
        self.check("h", r["rc"] == 0 and len(new) == 1,
                   f"a sandboxed dist-upgrade succeeds with one new BE (exit {r['rc']}, new {[b['name'] for b in new]})")
        self.check_no_strays("h", "after the successful sandbox")
        if len(new) != 1:
            return
        clone = new[0]
        with open(f"{OUT}/sandbox-clone", "w") as f:  # (i) uses it
            f.write(clone["name"] + "\n")
        self.check("h", clone["state"] == "complete", f"the sandbox {clone['name']} is complete (state {clone['state']})")
        self.check("h", self.version("hello") == f"install ok installed {base}",
                   f"the running system still has hello {base} ({self.version('hello')!r})")
        inside = self.with_mounted(clone["name"], lambda where: self.version("hello", where))
        self.check("h", inside == f"install ok installed {newer}", f"the sandbox has hello {newer} ({inside!r})")
        self.check_no_strays("h", "after `bootenv mount` + `bootenv unmount` of the sandbox (the admin's namespace)")

    def sandbox_failing_postinst(self) -> None:
        before = {b["name"] for b in self.bes()}
        r = sh("bootenv install -s -y broken")
        out = r["out"] + r["err"]
        self.check("h", r["rc"] != 0, f"a sandbox whose postinst fails exits non-zero (exit {r['rc']})")
        self.check("h", "could not destroy" not in out and "Destroyed" in out,
                   f"the failed sandbox is destroyed on a booted system (output tail {out[-600:]!r})")
        self.check("h", not self.new_bes(before), f"no BE is left behind (new {[b['name'] for b in self.new_bes(before)]})")
        self.check_no_strays("h", "after the failing sandbox")

    def sandbox_ctrl_c(self) -> None:
        before = {b["name"] for b in self.bes()}
        if os.path.exists(SLOW_STARTED):
            os.unlink(SLOW_STARTED)
        proc = subprocess.Popen(["bootenv", "install", "-s", "-y", "slow"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        during = {}
        try:
            deadline = time.monotonic() + 400
            while not os.path.exists(SLOW_STARTED) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            started = os.path.exists(SLOW_STARTED)
            self.check("h", started, f"slow's postinst started in the sandbox (bootenv exit {proc.poll()})")
            if started:
                during = self.strays()
                holders = sorted({(w["pid"], w["comm"]) for where in during.values() for w in where})
                self.check("h", bool(during) and all(w["pid"] == proc.pid for where in during.values() for w in where),
                           f"while the sandbox runs only bootenv's own namespace (pid {proc.pid}) has the clone mounted "
                           f"(holders {holders})")
                os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        print(f"$ bootenv install -s -y slow (SIGINT)\n{out}{err}[rc {proc.returncode}]", flush=True)
        self.check("h", proc.returncode == 130, f"Ctrl-C in the sandbox exits 130 (exit {proc.returncode}; {err[-400:]!r})")
        self.check("h", not self.new_bes(before), f"the interrupted sandbox is destroyed (new {[b['name'] for b in self.new_bes(before)]})")
        self.check("h", self.version("slow") == "" or "installed" not in self.version("slow"),
                   "slow is not installed on the running system")
        self.check_no_strays("h", "after Ctrl-C in the sandbox")

    # ------------------------------------------------------------ (i)

    def busy_is_busy(self) -> None:
        """The old way of mounting, by hand, to show the leak and that
        bootenv names who holds a busy BE: on the good sandbox of (h)."""
        exp = open(f"{OUT}/sandbox-clone").read().strip()
        mnt = f"/run/bootenv/{exp}"
        self.do(f"mkdir -p {mnt} && mount -t zfs -o zfsutil {BE_ROOT}/{exp} {mnt}")
        for d in ("dev", "proc", "sys", "run"):
            self.do(f"mkdir -p {mnt}/{d} && mount --rbind /{d} {mnt}/{d} && mount --make-rslave {mnt}/{d}")
        for d in ("run", "sys", "proc", "dev"):
            self.do(f"umount -R {mnt}/{d} || umount -R -l {mnt}/{d}")
        self.do(f"umount {mnt}")
        held = zfs_mounts_everywhere().get(f"{BE_ROOT}/{exp}", [])
        evidence = [{k: w[k] for k in ("pid", "comm", "unit", "ns")} for w in held]
        with open(f"{OUT}/old-way-holders.json", "w") as f:
            json.dump(evidence, f, indent=1)
        self.check("i", bool(held), f"mounted the old way, {BE_ROOT}/{exp} stays mounted in service namespaces: {evidence}")
        r = sh(f"bootenv destroy -y {exp}")
        msg = (r["err"].strip().splitlines() or [""])[-1]  # after the plan's progress lines
        named = [w for w in held if f"pid {w['pid']}" in msg]
        self.check("i", r["rc"] != 0 and "busy" in msg and "has children" not in msg and "snapshots" not in msg,
                   f"bootenv destroy refuses a busy BE as busy (exit {r['rc']}: {msg[-700:]!r})")
        units = sorted({w["unit"] for w in held if w["unit"]})
        self.check("i", bool(held) and bool(named) and all(f"systemctl restart {u}" in msg for u in units),
                   f"the refusal names the namespaces' processes and how to release them (restart {units})")
        self.check("i", msg.startswith("bootenv: ") and "Traceback" not in r["err"]
                   and sum(l.startswith("bootenv: ") for l in r["err"].splitlines()) == 1, "one error line, no traceback")
        # As the message says. (Unmounting the copies with nsenter is not
        # enough: measured, udevd kept the dataset busy until restarted.)
        for unit in units:
            sh(f"systemctl restart {unit}")
        for w in held:
            if not w["unit"]:
                sh(f"kill {w['pid']}")
        r = sh(f"bootenv destroy -y {exp}")
        self.check("i", r["rc"] == 0 and exp not in {b["name"] for b in self.bes()},
                   f"once released, bootenv destroy succeeds (exit {r['rc']}: {r['err'][-300:]!r})")
        self.check_no_strays("i", "after the busy BE was released and destroyed")
