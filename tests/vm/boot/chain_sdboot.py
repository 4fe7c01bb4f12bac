"""The systemd-boot chain (OVMF -> systemd-boot on the ESP): one run, 5
boots; boot 3 never comes up, by design. The same disk as the GRUB chain:
bootenv detects systemd-boot from the firmware (LoaderInfo).

  1 debian  bootenv detected systemd-boot; refresh bootenv; create x;
            activate x: x's kernel and entry on the ESP, the default  (s1)
  2 x       check (s1) / is x, systemd-boot booted bootenv-x.conf; create
            dead (its init exits); activate dead --once: the one-shot
            is LoaderEntryOneShot                                      (s2)
  3 dead    never comes up: systemd-boot consumed the one-shot itself
  4 x       check (s2): back on x, no one-shot left, dead failed; a BE
            whose kernel has no modules is refused                     (s5);
            create g; activate g --once                                (s3)
  5 g       check (s3): the trial booted g, confirm made it the default
            (LoaderEntryDefault); the BEs share one kernel copy on the
            ESP; destroy dead: its entry goes, the store keeps exactly
            what the other entries name                                (s4); done
"""

from __future__ import annotations

import os
import sys

from step import BE_ROOT, TREE, Step, sh

ESP = "/boot/efi"
sys.path.insert(0, TREE)
from bootenv.boot.efivars import loader_var as efi_var  # noqa: E402  (the tree's own reader)


class SystemdBootChain(Step):
    last_boot = 5

    def loader_facts(self) -> None:
        f = self.facts
        f["efi"] = {v: efi_var(v) for v in ("LoaderInfo", "LoaderEntrySelected", "LoaderEntryDefault", "LoaderEntryOneShot")}
        f["esp_entries"] = sorted(os.listdir(f"{ESP}/loader/entries")) if os.path.isdir(f"{ESP}/loader/entries") else None
        f["esp_files"] = sh(f"find {ESP}/bootenv -type f 2>/dev/null | sort")["out"]

    def efi(self, name: str, now: bool = False) -> str | None:
        return efi_var(name) if now else self.facts["efi"][name]

    def entry(self, be: str) -> str:
        return f"bootenv-{be}.conf"

    def entry_files(self, be: str) -> list[str]:
        """The kernel and initrd paths on the ESP that BE's entry names."""
        path = f"{ESP}/loader/entries/{self.entry(be)}"
        if not os.path.isfile(path):
            return []
        lines = open(path).read().splitlines()
        return [ESP + l.split()[1] for l in lines if l.startswith(("linux ", "initrd "))]

    def on_esp(self, be: str) -> bool:
        """The BE's loader entry is there and names a kernel and an initrd that are."""
        files = self.entry_files(be)
        return len(files) == 2 and all(os.path.isfile(f) for f in files)

    def store(self) -> set[str]:
        folder = f"{ESP}/bootenv/files"
        return {f"{folder}/{n}" for n in os.listdir(folder)} if os.path.isdir(folder) else set()

    def booted(self, scenario: str, be: str) -> None:
        self.check(scenario, self.running == be, f"/ is {BE_ROOT}/{be} (it is {self.facts['root']})")
        sel = self.efi("LoaderEntrySelected")
        self.check(scenario, sel == self.entry(be), f"systemd-boot booted {self.entry(be)} (LoaderEntrySelected {sel})")

    def stage1(self) -> None:
        info = self.efi("LoaderInfo") or ""
        self.check("s1", "systemd-boot" in info, f"the firmware booted systemd-boot (LoaderInfo {info!r})")
        self.booted("s1", "debian")
        self.check("s1", self.status("bootloader") == "systemd-boot",
                   f"bootenv detected systemd-boot (bootloader {self.status('bootloader')})")
        self.refresh_bootenv()
        self.do("bootenv create x")
        self.do("bootenv activate x")
        self.check("s1", self.on_esp("x"), f"x's loader entry, kernel and initrd are on the ESP ({self.entry_files('x')})")
        self.do(f"cat {ESP}/loader/entries/{self.entry('x')}")
        default = self.efi("LoaderEntryDefault", now=True)
        self.check("s1", default == self.entry("x"), f"LoaderEntryDefault is {self.entry('x')} (is {default})")

    def stage2(self) -> None:
        self.booted("s1", "x")
        self.check("s1", self.status("next_boot") == "x", f"status: next boot x (is {self.status('next_boot')})")
        self.create_dead("dead")
        self.do("bootenv activate dead --once")
        once, default = self.efi("LoaderEntryOneShot", now=True), self.efi("LoaderEntryDefault", now=True)
        self.check("s2", once == self.entry("dead") and default == self.entry("x"),
                   f"the one-shot is dead's entry, the default still x's (LoaderEntryOneShot {once}, LoaderEntryDefault {default})")
        self.check("s2", self.on_esp("dead"), "dead's kernel and entry are on the ESP")

    def stage3(self) -> None:
        self.check("s2", False, f"boot 3 should never come up (dead's init exits), but it runs {self.facts['root']}")

    def stage4(self) -> None:
        self.booted("s2", "x")
        self.check("s2", self.efi("LoaderEntryOneShot") is None,
                   f"no one-shot left: systemd-boot consumed it (LoaderEntryOneShot {self.efi('LoaderEntryOneShot')})")
        self.check("s2", self.verdict("dead") == "failed", f"status: dead failed (verdicts {self.status('verdicts')})")
        self.check("s2", not self.status("trial"), f"the trial is over (trial {self.status('trial')})")
        self.refuse_kernel_without_modules()
        self.do("bootenv create g")
        self.do("bootenv activate g --once")
        once = self.efi("LoaderEntryOneShot", now=True)
        self.check("s3", once == self.entry("g"), f"the one-shot is g's entry (LoaderEntryOneShot {once})")

    def refuse_kernel_without_modules(self) -> None:
        """(s5) A BE whose kernel has no modules in it (the classic broken
        rollback) is refused before anything changes."""
        kver = os.uname().release
        self.create_changed("nomod", "mv {where}/lib/modules/%s {where}/lib/modules/%s.away" % (kver, kver))
        default = self.efi("LoaderEntryDefault", now=True)
        r = sh("bootenv activate nomod")
        # stderr: the plan's progress ([1/5] ...), then the error, one line, last
        errors = [l for l in r["err"].splitlines() if l.startswith("bootenv: ")]
        self.check("s5", r["rc"] == 4 and len(errors) == 1 and r["err"].rstrip().endswith(errors[0])
                   and f"no /lib/modules/{kver}" in errors[0],
                   f"activate nomod is refused (exit 4), one error line naming the modules (exit {r['rc']}: {r['err'].strip()!r})")
        after = self.efi("LoaderEntryDefault", now=True)
        self.check("s5", after == default == self.entry("x") and self.status("next_boot") == "x",
                   f"nothing changed: the default is still x (LoaderEntryDefault {after})")
        self.do("bootenv destroy -y nomod")

    def stage5(self) -> None:
        self.booted("s3", "g")
        self.check("s3", self.facts["units"]["bootenv-confirm.service"] == "active",
                   f"bootenv-confirm.service succeeded on the trial (is {self.facts['units']['bootenv-confirm.service']})")
        default = self.efi("LoaderEntryDefault")
        self.check("s3", default == self.entry("g") and self.status("default") == "g",
                   f"after confirm, g is the default (LoaderEntryDefault {default}, status default {self.status('default')})")
        self.check("s3", self.status("last_good") == "g", f"g is the last good BE (is {self.status('last_good')})")
        self.check("s4", self.entry_files("g") == self.entry_files("x") and self.on_esp("x"),
                   f"BEs with the same kernel share one copy of it on the ESP ({self.entry_files('g')})")
        self.do("bootenv destroy -y dead")
        self.check("s4", not os.path.exists(f"{ESP}/loader/entries/{self.entry('dead')}"),
                   "destroying dead removed its loader entry")
        self.check("s4", self.on_esp("g") and self.on_esp("x"), "the other BEs' entries and their files stay")
        # (debian's entry was written when the disk was built, maybe by an older bootenv)
        needed = {f for be in ("debian", "x", "g") for f in self.entry_files(be) if f.startswith(f"{ESP}/bootenv/files/")}
        self.check("s4", self.store() == needed, f"the ESP keeps exactly the files the entries name ({sorted(self.store())})")
        self.next_action = "poweroff"
