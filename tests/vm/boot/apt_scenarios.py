"""The apt scenarios of the GRUB chain (chain_grub.py), on the booted
root-on-ZFS Debian, with a local repository built by tests/debs.py as the
only apt source (the BE's own sources are moved aside while they run):

  (f) the apt hook (contrib/apt/80bootenv) under a plain `apt install`:
      exactly one checkpoint, kind=hook, complete, naming the command
  (g) the hook under a real unattended-upgrades run that calls dpkg more
      than once (MinimalSteps): still exactly one checkpoint
  (e) a real `bootenv dist-upgrade --in-place` (hello 1.0 -> 2.0) with the
      hook installed: one checkpoint, kind=apt (the hook stood aside);
      activate it, reboot: / is the checkpoint, hello is 1.0 again, and the
      upgraded BE still has 2.0
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from step import BE_ROOT, OUT, TREE, sh

APT_REPO = "/run/bootenv-vmtest/repo"  # outside every BE (like tests/vm/aptsys.py)
APT_ASIDE = ".bootenv-vmtest-aside"
ORIGIN = "bootenv-vmtest"  # the repository's Release Origin: what unattended-upgrades allows
PRE_INVOKE_LOG = "/run/bootenv-vmtest/pre-invoke.log"  # one line per dpkg batch
TEST_APT_CONF = "/etc/apt/apt.conf.d/81bootenv-vmtest"
TEST_APT_SETTINGS = f"""// bootenv VM tests: count dpkg batches; let unattended-upgrades take the test repository
DPkg::Pre-Invoke {{ "echo dpkg-batch >>{PRE_INVOKE_LOG}"; }};
Unattended-Upgrade::Origins-Pattern {{ "origin={ORIGIN}"; }};
Unattended-Upgrade::MinimalSteps "true";
Unattended-Upgrade::OnlyOnACPower "false";
Unattended-Upgrade::Skip-Updates-On-Metered-Connections "false";
"""


def _deb(name: str, version: str):
    sys.path.insert(0, TREE)
    from tests.debs import Deb

    return Deb(name, version, files={f"/usr/share/{name}/version": f"{version}\n"})


class AptScenarios:
    """Mixed into a chain's Step (check, do, bes, with_mounted)."""

    def publish(self, *debs) -> None:
        """Add packages ((name, version) pairs, or tests.debs.Deb) to the
        test repository and refresh apt's lists."""
        sys.path.insert(0, TREE)
        from tests.debs import build_repo

        build_repo(Path(APT_REPO), [d if not isinstance(d, tuple) else _deb(*d) for d in debs], origin=ORIGIN)
        self.do("apt-get update -q")

    def sources_aside(self, root: str = "") -> None:
        """The BE's own apt sources aside; the test repository the only source."""
        self.do(f"cd {root}/etc/apt && if [ -e sources.list ]; then mv sources.list sources.list{APT_ASIDE}; fi && "
                f"for f in sources.list.d/*; do [ -e \"$f\" ] || continue; case $f in *{APT_ASIDE}) ;; *) mv \"$f\" \"$f{APT_ASIDE}\";; esac; done && "
                f"echo 'deb [trusted=yes] file:{APT_REPO} ./' >sources.list")

    def sources_back(self, root: str = "") -> None:
        self.do(f"cd {root}/etc/apt && rm -f sources.list && "
                f"for f in sources.list{APT_ASIDE} sources.list.d/*{APT_ASIDE}; do [ -e \"$f\" ] || continue; mv \"$f\" \"${{f%{APT_ASIDE}}}\"; done")

    def version(self, pkg: str, admindir: str = "") -> str:
        opt = f"--admindir={admindir}/var/lib/dpkg " if admindir else ""
        return sh(f"dpkg-query {opt}-W -f '${{Status}} ${{Version}}' {pkg}")["out"]

    def new_bes(self, before: set[str]) -> list[dict]:
        return [b for b in self.bes() if b["name"] not in before]

    # ------------------------------------------------------------ the stage

    def hooks_on_g(self) -> None:
        """(f) and (g): the apt hook installed on g, under apt and under
        unattended-upgrades."""
        self.check("e", sh("dpkg -s hello")["rc"] != 0, "hello is not installed on g before the apt scenarios")
        self.do(f"rm -rf {APT_REPO} && mkdir -p {os.path.dirname(PRE_INVOKE_LOG)}")
        self.do(f"install -m644 {TREE}/contrib/apt/80bootenv /etc/apt/apt.conf.d/80bootenv")
        with open(TEST_APT_CONF, "w") as f:
            f.write(TEST_APT_SETTINGS)
        self.sources_aside()
        try:
            self.hook_under_apt()
            self.hook_under_unattended_upgrades()
        finally:
            self.sources_back()

    def dist_upgrade_on_g(self) -> None:
        """(e): a real in-place dist-upgrade under a checkpoint (the hook
        still installed), then activate the checkpoint for the next boot."""
        self.do(f"mkdir -p {os.path.dirname(PRE_INVOKE_LOG)}")
        self.sources_aside()
        try:
            cp = self.dist_upgrade_in_place()
        finally:
            self.sources_back()
        if cp:
            self.do(f"bootenv activate {cp}")
            nxt = self.bootenv_status().get("next_boot")
            self.check("e", nxt == cp, f"status: the next boot is the checkpoint {cp} (is {nxt})")

    def bootenv_status(self) -> dict:
        import json

        return json.loads(self.do("bootenv status --json")["out"])

    def one_new_checkpoint(self, scenario: str, before: set[str], kind: str, command_has: str) -> dict | None:
        new = self.new_bes(before)
        self.check(scenario, len(new) == 1, f"exactly one new BE (new: {[b['name'] for b in new]})")
        if len(new) != 1:
            return None
        cp = new[0]
        self.check(scenario, cp["kind"] == kind and cp["state"] == "complete",
                   f"the checkpoint {cp['name']} is kind={kind}, state=complete (kind {cp['kind']}, state {cp['state']})")
        self.check(scenario, command_has in (cp.get("command") or "") and command_has in (cp["title"] or ""),
                   f"its command and title name {command_has!r} (command {cp.get('command')!r}, title {cp['title']!r})")
        return cp

    def hook_under_apt(self) -> None:
        self.publish(("hello", "1.0"), ("uu-one", "1.0"), ("uu-two", "1.0"))
        before = {b["name"] for b in self.bes()}
        r = self.do("apt install -y -q hello uu-one uu-two")  # apt itself, as an admin types it
        cp = self.one_new_checkpoint("f", before, "hook", "apt install")
        if not cp:
            return
        self.check("f", f"checkpoint {cp['name']} taken" in r["out"] + r["err"],
                   "apt's output says which checkpoint the hook took")
        self.check("f", self.version("hello") == "install ok installed 1.0", "hello 1.0 is installed on g")
        lacks = self.with_mounted(cp["name"], lambda where: self.version("hello", where))
        self.check("f", "installed" not in lacks, f"the hook's checkpoint has no hello (dpkg there: {lacks!r})")

    def hook_under_unattended_upgrades(self) -> None:
        self.publish(("uu-one", "2.0"), ("uu-two", "2.0"))
        self.do(f": >{PRE_INVOKE_LOG}")
        before = {b["name"] for b in self.bes()}
        self.do("unattended-upgrade -v")
        batches = len(open(PRE_INVOKE_LOG).read().splitlines())
        self.check("g", batches >= 2, f"unattended-upgrades ran dpkg in {batches} batches (MinimalSteps)")
        self.check("g", self.version("uu-one") == "install ok installed 2.0" and self.version("uu-two") == "install ok installed 2.0",
                   f"unattended-upgrades upgraded uu-one and uu-two to 2.0 ({self.version('uu-one')!r}, {self.version('uu-two')!r})")
        cp = self.one_new_checkpoint("g", before, "hook", "unattended-upgrade")
        if cp:
            old = self.with_mounted(cp["name"], lambda where: self.version("uu-one", where))
            self.check("g", old == "install ok installed 1.0", f"the checkpoint has uu-one 1.0 (dpkg there: {old!r})")

    def dist_upgrade_in_place(self) -> str | None:
        self.publish(("hello", "2.0"))
        before = {b["name"] for b in self.bes()}
        self.do("bootenv dist-upgrade --in-place -y")
        cp = self.one_new_checkpoint("e", before, "apt", "dist-upgrade")
        if not cp:
            return None
        open(f"{OUT}/checkpoint", "w").write(cp["name"] + "\n")
        self.check("e", self.version("hello") == "install ok installed 2.0",
                   f"hello 2.0 on the running g after the dist-upgrade (dpkg: {self.version('hello')!r})")
        old = self.with_mounted(cp["name"], lambda where: self.version("hello", where))
        self.check("e", old == "install ok installed 1.0", f"the checkpoint {cp['name']} still has hello 1.0 (dpkg there: {old!r})")
        return cp["name"]

    def check_rollback(self) -> None:
        cp = open(f"{OUT}/checkpoint").read().strip()
        self.check("e", self.facts["root"] == f"{BE_ROOT}/{cp}",
                   f"after 'activate {cp}' and a reboot, / is the checkpoint {BE_ROOT}/{cp} (it is {self.facts['root']})")
        self.check("e", self.version("hello") == "install ok installed 1.0",
                   f"hello is 1.0 again after the rollback (dpkg: {self.version('hello')!r})")
        text = sh("cat /usr/share/hello/version")["out"]
        self.check("e", text == "1.0\n", f"hello's file is 1.0's after the rollback ({text!r})")
        # the checkpoint was taken while the test repository was the only source
        self.sources_back()
        new = self.with_mounted("g", lambda where: self.version("hello", where))
        self.check("e", new == "install ok installed 2.0", f"g, the upgraded BE, still has hello 2.0 (dpkg there: {new!r})")
