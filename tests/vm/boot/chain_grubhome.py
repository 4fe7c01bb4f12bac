"""The GRUB-home chain (issue 14): a plain single-pool root on ZFS whose
/boot/grub is inside rpool/ROOT/debian, as a manual install often ends up
(grub-install run from the BE with no /boot/grub filesystem of its own),
made to work by `bootenv doctor --fix`; then activate, reboot into the
checkpoint, activate back. On the plain root disk (its ext4 /boot/grub is
emptied and left unmounted, so the only GRUB directory is the BE's):

  1 debian  GRUB's directory moved into the BE: copied from the ext4
            partition (then emptied), fstab's line dropped, grub-install and
            update-grub from the BE; a checkpoint `cp`; `doctor` fails GRUB's
            home and `activate cp` is refused, naming doctor --fix; `doctor
            --fix -n` changes nothing; `doctor --fix -y` gives GRUB rpool/grub
            (grub-install, update-grub); activate cp                      (n)
  2 cp      / is rpool/ROOT/cp, /boot/grub rpool/grub, the kernel loaded
            from cp; doctor says GRUB's home is shared; activate debian    (n)
  3 debian  back on debian; destroy cp; done                              (n)

Run alone: tests/vm/boots.py run grubhome
"""

from __future__ import annotations

from step import Step, sh

SCENARIO = "n"
OLD_HOME = "/run/bootenv-vmtest-oldgrub"


class GrubHomeChain(Step):
    last_boot = 3

    def loader_facts(self) -> None:
        f = self.facts
        f["grub_dir"] = sh("findmnt -n -o SOURCE -T /boot/grub")["out"].strip()
        f["cmdline"] = sh("cat /proc/cmdline")["out"].strip()

    def grub_home_into_be(self) -> None:
        """What a manual install leaves: GRUB's directory in the BE, and
        GRUB's prefix naming it. The ext4 partition is emptied (not
        reformatted): a boot that still read it would find no GRUB."""
        part = sh("findmnt -n -o SOURCE /boot/grub")["out"].strip()
        self.check(SCENARIO, part.startswith("/dev/"), f"the disk's /boot/grub is its ext4 partition ({part!r})")
        self.do("umount /boot/grub")
        self.do(f"mkdir -p {OLD_HOME} && mount {part} {OLD_HOME} && cp -a {OLD_HOME}/. /boot/grub/ "
                f"&& find {OLD_HOME} -mindepth 1 -delete && umount {OLD_HOME}")
        self.do(r"sed -i '\|[[:space:]]/boot/grub[[:space:]]|d' /etc/fstab && systemctl daemon-reload")
        disk = sh("grub-probe --target=disk /boot/grub")["out"].strip()
        self.do(f"grub-install --target=i386-pc {disk}")
        self.do("update-grub")

    def stage1(self) -> None:
        self.check(SCENARIO, self.running == "debian", f"boot 1 runs debian (root {self.facts['root']})")
        self.refresh_bootenv()
        self.grub_home_into_be()
        where = sh("findmnt -n -o SOURCE -T /boot/grub")["out"].strip()
        self.check(SCENARIO, where == "rpool/ROOT/debian", f"/boot/grub is inside rpool/ROOT/debian now ({where!r})")
        self.do("bootenv create cp")
        doctor = sh("bootenv doctor")
        self.check(SCENARIO, doctor["rc"] != 0 and "[fail] GRUB: /boot/grub is inside boot environment rpool/ROOT/debian" in doctor["out"],
                   f"doctor fails GRUB's directory inside the BE, exit {doctor['rc']}")
        refused = sh("bootenv activate cp")
        self.check(SCENARIO, refused["rc"] != 0 and "bootenv doctor --fix" in refused["err"],
                   f"activate cp is refused, naming doctor --fix (exit {refused['rc']}: {refused['err'].strip()[-200:]!r})")
        before = sh("zfs list -H -o name -r rpool; zpool get -H -o value bootfs rpool")["out"]
        self.do("bootenv doctor --fix -n")
        after = sh("zfs list -H -o name -r rpool; zpool get -H -o value bootfs rpool")["out"]
        self.check(SCENARIO, before == after, "doctor --fix -n changed no dataset")
        self.do("bootenv doctor --fix -y")
        home = sh("findmnt -n -o SOURCE /boot/grub")["out"].strip()
        self.check(SCENARIO, home == "rpool/grub", f"after doctor --fix, /boot/grub is rpool/grub ({home!r})")
        doctor = sh("bootenv doctor")
        self.check(SCENARIO, "[ok] GRUB: /boot/grub on zfs (rpool/grub), shared" in doctor["out"],
                   f"doctor: GRUB's home is shared now ({[l for l in doctor['out'].splitlines() if 'GRUB' in l]})")
        self.do("bootenv activate cp")

    def booted(self, be: str, how: str) -> None:
        """This boot is BE `be`'s, its kernel loaded by GRUB from rpool/grub's menu."""
        self.check(SCENARIO, self.running == be, f"{how}, / is rpool/ROOT/{be} ({self.facts['root']})")
        self.check(SCENARIO, self.facts["grub_dir"] == "rpool/grub", f"/boot/grub is rpool/grub ({self.facts['grub_dir']!r})")
        self.check(SCENARIO, f"BOOT_IMAGE=/ROOT/{be}@/boot/vmlinuz-" in self.facts["cmdline"],
                   f"GRUB loaded {be}'s kernel ({self.facts['cmdline']!r})")

    def stage2(self) -> None:
        self.booted("cp", "after doctor --fix, 'activate cp' and a reboot")
        doctor = sh("bootenv doctor")
        self.check(SCENARIO, "[ok] GRUB: /boot/grub on zfs (rpool/grub), shared" in doctor["out"], "doctor: GRUB's home is shared")
        self.do("bootenv activate debian")

    def stage3(self) -> None:
        self.booted("debian", "activated back")
        self.do("bootenv destroy -y cp")
        left = sh("zfs list -H -o name -r rpool")["out"].split()
        self.check(SCENARIO, "rpool/ROOT/cp" not in left and "rpool/grub" in left, f"cp destroyed, rpool/grub kept ({left})")
