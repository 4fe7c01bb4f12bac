"""The GRUB driver: one menu entry per BE, a default that follows
`bootenv activate`, and a one-shot that really is one-shot on ZFS.

Menu. contrib/grub.d/42_bootenv (installed as /etc/grub.d/42_bootenv, run
by update-grub) emits one entry per BE, `--id bootenv-NAME`, booting the
BE's newest kernel with `root=ZFS=pool/ROOT/NAME` (zfs-initramfs); the
title is the BE's org.bootenv:title, quoted for grub.cfg. This is how the
admin picks an older checkpoint at boot. The driver runs update-grub after
create, destroy and rename. So that update-grub mounts no BE it already
knows, each BE's kernels, initramfs and modules are recorded on it
(org.bootenv:kernels, `record_kernels`) when it is created from the
running system; 42_bootenv trusts that record while the BE's `referenced`
is unchanged, and records it itself after looking inside a BE once.

Default and one-shot. bootenv keeps its own two variables in its own
environment block, GRUBDIR/bootenv.env (written with `grub-editenv FILE
set`): `bootenv_default` (the activated BE) and `bootenv_once` (a trial).
42_bootenv's grub.cfg code loads them and sets `default` to
`bootenv-$bootenv_once`, else `bootenv-$bootenv_default`, so nothing
depends on GRUB_DEFAULT=saved or on grub-reboot's next_entry.

Why not grub-reboot: GRUB cannot write its environment block on ZFS (nor
btrfs, LVM, RAID), so 00_header's `save_env next_entry` silently fails and
a one-shot never expires (measured on a root-on-ZFS guest). Hence:

- When GRUBDIR is on a filesystem GRUB can write (ext2/3/4 or FAT: a
  separate /boot or /boot/grub, or the ESP bind-mounted there as Ubuntu
  does), the generated code clears `bootenv_once` with `save_env` the
  moment it uses it: a true one-shot, even for a BE that panics before
  userspace (`oneshot_expires`).
- When GRUBDIR is on ZFS, GRUB only reads; bootenv-boot.service clears the
  one-shot from the booted system before anything else (trial.py). That
  covers every failure after systemd starts; a BE that dies earlier is
  booted again until the admin picks another entry in the menu.
- GRUBDIR must be shared by every BE (GRUB reads the grub.cfg and
  environment of the ONE place its prefix names): a partition, the ESP, or
  a dataset outside the BE root. /boot/grub inside a BE (GRUB would keep
  reading the copy in the BE it was installed from, whatever bootenv
  writes in the others) is refused at activation with the fix; so is
  /boot/grub inside a paired boot half (bpool/BOOT/debian, as the OpenZFS
  guides install it), for the same reason.

Kernels: `mid_activate` (the BE mounted) refuses a BE whose kernel would
boot without its modules (kernels.py), which is what goes wrong when /boot
is a separate partition shared by the BEs.
"""

from __future__ import annotations

import os
from typing import Optional

from ..crash import crash_point
from ..errors import Refused
from ..model import PROP_KERNELS, BootEnv
from ..run import CommandFailed, Runner
from .base import Bootloader
from .kernels import boot_record, check_kernel, probe_boot

ENV_FILE = "bootenv.env"
VAR_DEFAULT = "bootenv_default"
VAR_ONCE = "bootenv_once"
ENTRY_PREFIX = "bootenv-"
# Filesystems GRUB's save_env can write to (it needs plain block lists).
GRUB_WRITABLE = frozenset({"ext2", "ext3", "ext4", "vfat", "fat", "msdos"})


def parse_grubenv(text: str) -> dict[str, str]:
    """Given a GRUB environment block, return its variables. grub-editenv
    writes `name=value` lines, a backslash before a backslash or a newline
    in the value; `#` lines (the header and the padding) are not variables."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] == "#" or text[i] == "\n":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        chars: list[str] = []
        while i < n and text[i] != "\n":
            if text[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(text[i])
            i += 1
        i += 1
        key, sep, value = "".join(chars).partition("=")
        if sep:
            out[key] = value
    return out


def first_entry_root(grub_cfg: str, be_root: str) -> Optional[str]:
    """The BE dataset the first menu entry of `grub_cfg` boots (its linux
    line's root=ZFS=), when GRUB's default is entry 0; else None."""
    try:
        with open(grub_cfg, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    in_entry = False
    for line in lines:
        words = line.split()
        if not words:
            continue
        if not in_entry:
            if words[0] == "set" and len(words) > 1 and words[1].startswith("default="):
                # 00_header: "0", or grub-reboot's next_entry (which bootenv
                # does not use); anything else (saved_entry, an id) is not ours to read
                if words[1].split("=", 1)[1].strip("\"'") not in ("0", "${next_entry}"):
                    return None
            elif words[0] in ("menuentry", "submenu"):
                if words[0] == "submenu":
                    return None
                in_entry = True
        elif words[0] == "linux":
            roots = [w[len("root=ZFS="):] for w in words if w.startswith("root=ZFS=")]
            root = roots[-1] if roots else ""
            return root if root.startswith(be_root + "/") else None
        elif words[0] == "}":
            return None
    return None


class GrubBootloader(Bootloader):
    name = "grub"
    needs_mount = True
    oneshot = True

    def __init__(
        self,
        *,
        grub_dir: str = "/boot/grub",
        root: str = "/",
        runner: Optional[Runner] = None,
        update_grub: tuple[str, ...] = ("update-grub",),
    ):
        super().__init__(root=root, runner=runner)
        self.grub_dir = grub_dir
        self.env_path = os.path.join(grub_dir, ENV_FILE)
        self.update_grub = update_grub
        self._where: Optional[tuple[str, str]] = None

    # ------------------------------------------------------------ layout

    def grub_dir_fs(self) -> tuple[str, str]:
        """(fstype, source) of the filesystem holding GRUBDIR."""
        if self._where is None:
            try:
                out = self.runner.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", self.grub_dir], check=False).stdout
            except CommandFailed:
                out = ""
            fstype, _, source = (out.strip().splitlines() or [""])[0].partition(" ")
            self._where = (fstype, source.strip())
        return self._where

    @property
    def oneshot_expires(self) -> bool:
        return self.grub_dir_fs()[0] in GRUB_WRITABLE

    def _grub_dir_in_be(self) -> Optional[str]:
        """The BE dataset (or paired boot half: the OpenZFS guides put
        /boot/grub in bpool/BOOT/debian) holding GRUBDIR, if one does."""
        fstype, source = self.grub_dir_fs()
        roots = [r for r in (self.be_root, self.boot_root) if r]
        if fstype == "zfs" and any(source.startswith(r + "/") for r in roots):
            return source
        return None

    # ------------------------------------------------------------ environment

    def read_env(self) -> dict[str, str]:
        try:
            with open(self.env_path, encoding="utf-8", errors="replace") as f:
                return parse_grubenv(f.read())
        except OSError:
            return {}

    def _editenv(self, *args: str) -> None:
        crash_point("grub-env", "before")
        if not os.path.exists(self.env_path):
            self.runner.run(["grub-editenv", self.env_path, "create"], mutating=True)
        self.runner.run(["grub-editenv", self.env_path, *args], mutating=True)
        crash_point("grub-env", "after")

    def next_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        env = self.read_env()
        name = env.get(VAR_ONCE) or env.get(VAR_DEFAULT)
        return f"{be_root}/{name}" if name else self.first_entry_root(be_root) or bootfs

    def default_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        name = self.read_env().get(VAR_DEFAULT)
        return f"{be_root}/{name}" if name else self.first_entry_root(be_root) or bootfs

    def first_entry_root(self, be_root: str) -> Optional[str]:
        """With no bootenv_default (bootenv never activated anything, or an
        activate was killed before its grub-env write), GRUB boots what
        00_header's `set default="0"` names: the menu's first entry, 10_linux's
        for the root update-grub last ran on. Not bootfs: they differ after
        a crash between the bootfs write and the grub-env one. Its
        root=ZFS= dataset when that is a BE; None when the menu cannot tell
        (no grub.cfg, GRUB_DEFAULT=saved or an id, no ZFS root)."""
        return first_entry_root(os.path.join(self.grub_dir, "grub.cfg"), be_root)

    # ------------------------------------------------------------ phases

    def pre_activate(self, be: BootEnv) -> None:
        inside = self._grub_dir_in_be()
        if inside:
            raise Refused(
                f"cannot activate {be.name} with GRUB: {self.grub_dir} is inside boot environment {inside}, "
                "so GRUB keeps reading the menu and environment of the BE it was installed from; "
                f"put {self.grub_dir} on a filesystem every BE shares (an ext4 /boot or /boot/grub partition, "
                "the ESP, or a dataset outside the BE root and the boot root such as bpool/grub) and re-run "
                "grub-install and update-grub: `bootenv doctor --fix` does all that"
            )

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        layout = probe_boot(self.runner, self.root, self.running, self.boot_root)
        check_kernel(be.name, self.path(mountpoint), layout, self.path("/", "boot"))

    def post_activate(self, be: BootEnv) -> None:
        self._editenv("set", f"{VAR_DEFAULT}={be.name}")
        if self.read_env().get(VAR_ONCE):
            self._editenv("unset", VAR_ONCE)

    def set_oneshot(self, be: BootEnv) -> None:
        self._editenv("set", f"{VAR_ONCE}={be.name}")

    def clear_oneshot(self) -> None:
        if self.read_env().get(VAR_ONCE):
            self._editenv("unset", VAR_ONCE)

    def regenerate_menu(self) -> None:
        self.runner.run(list(self.update_grub), mutating=True)

    def _regenerate(self) -> None:
        self.menu_changed()

    def record_kernels(self, be: BootEnv, tree: Optional[str] = None) -> None:
        """Record on `be` what its menu entry needs (org.bootenv:kernels,
        kernels.boot_record), read from `tree` where it is mounted, or from
        the running system when `be` was just cloned from it (same files):
        update-grub then needs no mount for it, so a checkpoint's cost does
        not grow with the number of BEs. Otherwise record nothing:
        42_bootenv looks inside once and records it itself."""
        if tree is None:
            source = (be.origin or "").split("@", 1)[0]
            if not source or source != self.running:
                return
            tree = self.root
        self.zfs.set_props(be.dataset, {PROP_KERNELS: boot_record(tree, be.referenced)})

    def post_create(self, be: BootEnv) -> None:
        self.record_kernels(be)
        self._regenerate()

    def post_destroy(self, name: str) -> None:
        self._regenerate()

    def post_rename(self, old: str, new: str) -> None:
        env = self.read_env()
        for var in (VAR_DEFAULT, VAR_ONCE):
            if env.get(var) == old:
                self._editenv("set", f"{var}={new}")
        self._regenerate()
