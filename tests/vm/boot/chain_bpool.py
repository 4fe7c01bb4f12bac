"""The boot pool chain (issue 14), on the root disk laid out as the OpenZFS
guide lays it out (tests/vm/rootdisk/build-bpool.sh: bpool/BOOT/debian at
/boot with GRUB's directory inside it, rpool encrypted, rpool/home and
rpool/var/log shared, mounts from zfs-mount-generator's cache):

  1 debian  `bootenv doctor` names the layout and fails GRUB's home; `doctor
            --fix` gives GRUB bpool/grub (grub-install, update-grub). A
            kernel from the test repository (linux-image-6.99.1, pulled by
            bkt-kernel 1.0); checkpoint `before` (both pools); a kernel
            upgrade in place with `bootenv dist-upgrade --in-place` (bkt-kernel
            2.0 -> linux-image-6.99.2) and `apt autoremove` of the old kernel;
            activate `before`: allowed, its own /boot has 6.99.1          (m)
  2 before  / is rpool/ROOT/before, /boot bpool/BOOT/before, the kernel GRUB
            loaded /BOOT/before@/vmlinuz-6.99.1, dpkg has 6.99.1 and not 6.99.2,
            the home directory's file unchanged, the BE encrypted under
            rpool; activate debian back (its boot half canmount=on, the
            others noauto, bootfs); destroy the dist-upgrade's checkpoint:
            both halves go; done                                          (m)

Two boots, not three: booting back into debian would take a CI minute or
two more for what the GRUB chain's boots show on the plain disk; the
activation back is checked in the pool's properties instead.

The test kernels are the running kernel's vmlinuz and initramfs under new
version names, with a /lib/modules/VERSION of their own: GRUB loads them by
name (BOOT_IMAGE says which), and they boot because they are the real
kernel. Run alone: BOOTENV_VM_SUITE=bookworm tests/vm/boots.py run bpool

UbuntuChain: the same story (scenario u) on Ubuntu's installer layout
(rootdisk/build-ubuntu.sh: bpool/BOOT/ubuntu_ab12cd, rpool/ROOT/ubuntu_ab12cd
`on` with its children, rpool/USERDATA/root_xy12 tied to it by zsys's
property, an autozsys state): there the original BE's datasets are
canmount=on, and activating the checkpoint must make them noauto or
`zfs mount -a` would mount them over the checkpoint's; USERDATA and zsys's
property and snapshots are checked in the checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from apt_scenarios import APT_REPO, AptScenarios
from step import OUT, TREE, Step, sh

OLD, NEW = "6.99.1-bootenvtest", "6.99.2-bootenvtest"
FACTS = f"{OUT}/bpool-facts"


def kernel_deb(version: str, running: str, repo: str) -> None:
    """linux-image-VERSION: the running kernel's vmlinuz and initramfs under
    VERSION, /lib/modules/VERSION, update-grub after install and removal
    (what /etc/kernel/post{inst,rm}.d/zz-update-grub do for Debian's)
    unless BKT_SKIP_UPDATE_GRUB is set: where a bootenv command right after
    makes the menu anyway (~1 min an update-grub under TCG); the one run
    under `bootenv dist-upgrade` keeps it."""
    tree = Path(f"/var/tmp/bkt-{version}")
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "boot").mkdir()
    (tree / f"lib/modules/{version}").mkdir(parents=True)
    subprocess.run(["cp", f"/boot/vmlinuz-{running}", str(tree / f"boot/vmlinuz-{version}")], check=True)
    subprocess.run(["cp", f"/boot/initrd.img-{running}", str(tree / f"boot/initrd.img-{version}")], check=True)
    (tree / f"lib/modules/{version}/modules.order").write_text("")
    (tree / "DEBIAN/control").write_text(
        f"Package: linux-image-{version}\nVersion: 1\nArchitecture: all\nSection: kernel\nPriority: optional\n"
        "Maintainer: bootenv tests <tests@bootenv.invalid>\nDescription: test kernel (the running one, renamed)\n")
    for script in ("postinst", "postrm"):
        path = tree / "DEBIAN" / script
        path.write_text("#!/bin/sh\nset -e\n[ -n \"$BKT_SKIP_UPDATE_GRUB\" ] || "
                        "{ [ -x /usr/sbin/update-grub ] && [ -d /boot/grub ] && update-grub || true; }\n")
        path.chmod(0o755)
    os.makedirs(repo, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(tree), f"{repo}/linux-image-{version}_1_all.deb"],
                   check=True, capture_output=True)
    subprocess.run(["rm", "-rf", str(tree)], check=True)


def canmount_on() -> list[str]:
    """The BE and boot-half datasets a boot mounts by itself (canmount=on)."""
    rows = sh("zfs list -H -o name,canmount -r bpool/BOOT rpool/ROOT")["out"].splitlines()
    return [line.split("\t")[0] for line in rows if line.endswith("\ton")]


class BootPoolChain(AptScenarios, Step):
    last_boot = 2
    BE = "debian"  # the disk's own BE
    MARKER = "/home/userdata-marker"  # written on a shared dataset (rpool/home) when the disk was built
    LAYOUT = "Layout: boot pool bpool for /boot, one boot half per BE, encrypted root"
    SCENARIO = "m"

    def loader_facts(self) -> None:
        f = self.facts
        f["boot"] = sh("findmnt -n -o SOURCE /boot")["out"].strip()
        f["grub_dir"] = sh("findmnt -n -o SOURCE /boot/grub")["out"].strip()
        f["cmdline"] = sh("cat /proc/cmdline")["out"].strip()
        f["bootenv_env"] = sh("grub-editenv /boot/grub/bootenv.env list")["out"]
        f["canmount"] = sh("zfs list -H -o name,canmount -r -d 1 bpool/BOOT")["out"]

    def booted_kernel(self) -> str:
        words = [w for w in self.facts["cmdline"].split() if w.startswith("BOOT_IMAGE=")]
        return words[0].removeprefix("BOOT_IMAGE=") if words else ""

    def marker(self) -> str:
        return sh(f"cat {self.MARKER}")["out"]

    def stage1(self) -> None:
        self.check(self.SCENARIO, self.running == self.BE and self.facts["boot"] == f"bpool/BOOT/{self.BE}",
                   f"boot 1 runs {self.BE} with /boot from bpool/BOOT/{self.BE} (root {self.facts['root']}, /boot {self.facts['boot']})")
        self.refresh_bootenv()
        open(FACTS, "w").write(self.marker())
        doctor = sh("bootenv doctor")
        self.check(self.SCENARIO, self.LAYOUT in doctor["out"],
                   f"doctor names the layout ({doctor['out'].splitlines()[:1]})")
        self.check(self.SCENARIO, f"[fail] GRUB: /boot/grub is inside boot environment bpool/BOOT/{self.BE}" in doctor["out"],
                   "doctor fails GRUB's directory inside the boot half")
        self.do("bootenv doctor --fix -n")
        self.do("bootenv doctor --fix -y")
        self.check(self.SCENARIO, sh("findmnt -n -o SOURCE /boot/grub")["out"].strip() == "bpool/grub",
                   "after doctor --fix, /boot/grub is bpool/grub")
        doctor = sh("bootenv doctor")
        self.check(self.SCENARIO, "[ok] GRUB: /boot/grub on zfs (bpool/grub), shared" in doctor["out"],
                   f"doctor: GRUB's home is shared now ({[l for l in doctor['out'].splitlines() if 'GRUB' in l]})")
        self.check(self.SCENARIO, f"[ok] /boot: bpool/BOOT/{self.BE} on boot pool bpool, paired" in doctor["out"], "doctor: /boot is paired")
        # The test kernels, the only apt source, and the old kernel installed.
        running = sh("uname -r")["out"].strip()
        self.do(f"rm -rf {APT_REPO}")
        for version in (OLD, NEW):
            kernel_deb(version, running, APT_REPO)
        sys.path.insert(0, TREE)
        from tests.debs import Deb

        self.sources_aside()
        try:
            self.publish(Deb("bkt-kernel", "1.0", depends=f"linux-image-{OLD}"))
            self.do("BOOTENV_HOOK=off BKT_SKIP_UPDATE_GRUB=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q bkt-kernel=1.0")
            self.check(self.SCENARIO, os.path.exists(f"/boot/vmlinuz-{OLD}"), f"the old kernel {OLD} is in /boot")
            self.do("bootenv create before")
            self.publish(Deb("bkt-kernel", "2.0", depends=f"linux-image-{NEW}"))
            self.do("DEBIAN_FRONTEND=noninteractive bootenv dist-upgrade --in-place -y")
            # apt keeps the running kernel and the two newest; the running one
            # is the disk's own here, so the old test kernel is "the previous
            # one": Protect-Kernels=false removes it as the next upgrade would.
            self.do("BOOTENV_HOOK=off BKT_SKIP_UPDATE_GRUB=1 DEBIAN_FRONTEND=noninteractive apt-get -o APT::Protect-Kernels=false "
                    "autoremove -y -q")
        finally:
            self.sources_back()
        self.check(self.SCENARIO, not os.path.exists(f"/boot/vmlinuz-{OLD}") and os.path.exists(f"/boot/vmlinuz-{NEW}"),
                   f"after the upgrade and autoremove, /boot has {NEW} and not {OLD}")
        self.check(self.SCENARIO, "linux-image-" + OLD not in sh("dpkg -l 'linux-image-6.99*' | grep ^ii")["out"],
                   f"dpkg: linux-image-{OLD} is gone")
        bes = {b["name"]: b for b in self.bes()}
        self.check(self.SCENARIO, bes["before"]["boot_dataset"] == "bpool/BOOT/before",
                   f"before's boot half is bpool/BOOT/before ({bes['before'].get('boot_dataset')})")
        apt_cps = [n for n, b in bes.items() if b["kind"] == "apt"]
        self.check(self.SCENARIO, len(apt_cps) == 1 and bes[apt_cps[0]]["boot_dataset"] == f"bpool/BOOT/{apt_cps[0]}",
                   f"the dist-upgrade's checkpoint has its boot half too ({apt_cps})")
        self.do("bootenv activate before")
        self.do("grep -n 'bootenv-before' -A8 /boot/grub/grub.cfg")
        cfg = sh("cat /boot/grub/grub.cfg")["out"]
        self.check(self.SCENARIO, f"linux /BOOT/before@/vmlinuz-{OLD} root=ZFS=rpool/ROOT/before" in cfg,
                   f"the menu entry of before loads {OLD} from its own boot half")
        self.check(self.SCENARIO, "bpool/BOOT/before\ton" in sh("zfs list -H -o name,canmount -r bpool/BOOT")["out"],
                   "bpool/BOOT/before is the boot half mounted at boot (canmount=on)")

    def stage2(self) -> None:
        self.check(self.SCENARIO, self.running == "before", f"after 'activate before' and a reboot, / is rpool/ROOT/before (root {self.facts['root']})")
        self.check(self.SCENARIO, self.facts["boot"] == "bpool/BOOT/before", f"/boot is bpool/BOOT/before (is {self.facts['boot']!r})")
        self.check(self.SCENARIO, self.facts["grub_dir"] == "bpool/grub", f"/boot/grub is bpool/grub (is {self.facts['grub_dir']!r})")
        self.check(self.SCENARIO, self.booted_kernel() == f"/BOOT/before@/vmlinuz-{OLD}",
                   f"GRUB loaded the old kernel from before's boot half (BOOT_IMAGE {self.booted_kernel()!r})")
        self.check(self.SCENARIO, self.version(f"linux-image-{OLD}").startswith("install ok installed")
                   and not self.version(f"linux-image-{NEW}").startswith("install ok installed"),
                   f"dpkg: {OLD} installed, {NEW} not")
        self.check(self.SCENARIO, self.marker() == open(FACTS).read(), f"{self.MARKER} on a shared dataset is unchanged")
        self.layout_checks()
        self.check(self.SCENARIO, "boot pool: " in self.facts["list"], "bootenv list says the boot pool's room")
        self.do(f"bootenv activate {self.BE}")
        on = canmount_on()
        bootfs = sh("zpool get -H -o value bootfs rpool")["out"].strip()
        self.check(self.SCENARIO, on == [f"bpool/BOOT/{self.BE}"] and bootfs == f"rpool/ROOT/{self.BE}",
                   f"activate {self.BE} back: bootfs is its root, its boot half alone canmount=on ({bootfs}; {on})")
        apt_cp = next(b["name"] for b in self.bes() if b["kind"] == "apt")
        self.do(f"bootenv destroy -y {apt_cp}")
        left = sh("zfs list -H -o name -r bpool/BOOT rpool/ROOT")["out"].split()
        self.check(self.SCENARIO, f"bpool/BOOT/{apt_cp}" not in left and f"rpool/ROOT/{apt_cp}" not in left,
                   f"destroy took both halves of {apt_cp} ({left})")

    def layout_checks(self) -> None:
        """What this layout adds (the guide's: the root is encrypted)."""
        enc = sh("zfs get -H -o value encryptionroot,keystatus rpool/ROOT/before")["out"].split()
        self.check(self.SCENARIO, enc == ["rpool", "available"], f"before is encrypted under rpool, key loaded ({enc})")


ZSYS_TIE = "com.ubuntu.zsys:bootfs-datasets"


class UbuntuChain(BootPoolChain):
    BE = "ubuntu_ab12cd"
    MARKER = "/root/userdata-marker"  # on rpool/USERDATA/root_xy12
    LAYOUT = "Layout: Ubuntu installer (zsys), boot pool bpool for /boot, one boot half per BE"
    SCENARIO = "u"

    def layout_checks(self) -> None:
        """USERDATA mounted and tied to the disk's root as zsys left it; zsys's
        state there; only the booted BE's datasets are canmount=on."""
        where = sh("findmnt -n -o SOURCE /root")["out"].strip()
        self.check(self.SCENARIO, where == "rpool/USERDATA/root_xy12", f"/root is rpool/USERDATA/root_xy12 (is {where!r})")
        tie = sh(f"zfs get -H -o value {ZSYS_TIE} rpool/USERDATA/root_xy12")["out"].strip()
        self.check(self.SCENARIO, tie == f"rpool/ROOT/{self.BE}", f"USERDATA's {ZSYS_TIE} is as zsys set it ({tie!r})")
        snaps = sh("zfs list -H -o name -t snapshot -r rpool/USERDATA bpool/BOOT rpool/ROOT")["out"].split()
        self.check(self.SCENARIO, "rpool/USERDATA/root_xy12@autozsys_q1w2e3" in snaps
                   and sum(s.endswith("@autozsys_q1w2e3") for s in snaps) == 12,
                   f"zsys's state is whole: 12 autozsys snapshots (root tree, boot half, USERDATA) ({len(snaps)} snapshots in all)")
        mine = self.facts["root"]
        on = canmount_on()
        half = f"bpool/BOOT/{mine.rsplit('/', 1)[1]}"
        self.check(self.SCENARIO, all(d == mine or d.startswith(mine + "/") or d == half for d in on),
                   f"only the booted BE's datasets are canmount=on ({on})")
        mounts = sh("findmnt -n -o SOURCE /var/lib/dpkg")["out"].strip()
        self.check(self.SCENARIO, mounts == f"{mine}/var/lib/dpkg", f"/var/lib/dpkg is the booted BE's ({mounts!r})")
