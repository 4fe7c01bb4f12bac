"""The systemd-boot driver: each BE's kernel and initrd on the ESP, one
loader entry per BE, `bootctl set-default` / `set-oneshot`.

systemd-boot reads only the ESP (FAT), so a BE's kernel has to be there.
The files are stored once per content, not once per BE: every checkpoint
of the running system has the same kernel and initrd, and an ESP of a few
hundred MB would be full after a handful of ~45 MB copies.

    ESP/bootenv/files/DIGEST-vmlinuz-VERSION, DIGEST-initrd.img-VERSION
    ESP/loader/entries/bootenv-NAME.conf
        title   TITLE (bootenv NAME)
        version VERSION
        linux   /bootenv/files/DIGEST-vmlinuz-VERSION
        initrd  /bootenv/files/DIGEST-initrd.img-VERSION
        options root=ZFS=pool/ROOT/NAME <the rest of /etc/kernel/cmdline>

(DIGEST: the first 16 hex digits of the file's SHA-256.) A file no
bootenv entry names is removed after every change of the entries.

`mid_activate` (the BE mounted) checks the kernel has its modules
(kernels.py) and copies it; `post_create` writes the entry of a BE cloned
from the running one from the running /boot (a clone has the same files);
destroy and rename remove / rewrite the entry.

The one-shot is the LoaderEntryOneShot EFI variable, which systemd-boot
itself deletes when it boots it: a true one-shot (`oneshot_expires`), even
for a BE that dies before userspace.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from typing import Optional

from ..crash import crash_point
from ..errors import OperationFailed
from ..model import BootEnv
from ..run import CommandFailed, Runner
from .base import Bootloader
from .efivars import EFIVARS, LOADER_GUID, loader_var  # noqa: F401  (LOADER_GUID: for callers)
from .kernels import check_kernel, probe_boot, version_key

ENTRY_PREFIX = "bootenv-"
FILES = "bootenv/files"  # on the ESP
_FILE_LINE = re.compile(r"^(?:linux|initrd)\s+(\S+)", re.MULTILINE)


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class SystemdBootBootloader(Bootloader):
    name = "systemd-boot"
    needs_mount = True
    oneshot = True

    def __init__(
        self,
        *,
        esp: Optional[str] = None,
        root: str = "/",
        cmdline_file: str = "/etc/kernel/cmdline",
        efivars: str = EFIVARS,
        runner: Optional[Runner] = None,
    ):
        super().__init__(root=root, runner=runner)
        self._esp = esp
        self.cmdline_file = cmdline_file
        self.efivars = efivars

    @property
    def oneshot_expires(self) -> bool:
        return True

    @property
    def esp(self) -> str:
        if self._esp is None:
            try:
                self._esp = self.runner.run(["bootctl", "--print-esp-path"]).stdout.strip()
            except CommandFailed:
                self._esp = next((p for p in ("/boot/efi", "/efi", "/boot") if os.path.isdir(os.path.join(p, "loader"))), "/boot/efi")
        return self._esp

    def entry_id(self, name: str) -> str:
        return f"{ENTRY_PREFIX}{name}.conf"

    def entry_path(self, name: str) -> str:
        return os.path.join(self.esp, "loader", "entries", self.entry_id(name))

    def kernel_dir(self, name: str) -> str:
        """Where older bootenv versions kept a BE's own copies."""
        return os.path.join(self.esp, "bootenv", name)

    def files_dir(self) -> str:
        return os.path.join(self.esp, FILES)

    # ------------------------------------------------------------ EFI variables

    def _efi(self, var: str) -> Optional[str]:
        return loader_var(var, self.efivars)

    def _be_of_entry(self, be_root: str, entry: Optional[str]) -> Optional[str]:
        if entry and entry.startswith(ENTRY_PREFIX) and entry.endswith(".conf"):
            return f"{be_root}/{entry[len(ENTRY_PREFIX):-len('.conf')]}"
        return None

    def next_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        return (
            self._be_of_entry(be_root, self._efi("LoaderEntryOneShot"))
            or self._be_of_entry(be_root, self._efi("LoaderEntryDefault"))
            or bootfs
        )

    def default_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        return self._be_of_entry(be_root, self._efi("LoaderEntryDefault")) or bootfs

    # ------------------------------------------------------------ entries

    def _cmdline(self, dataset: str) -> str:
        try:
            with open(self.cmdline_file, encoding="utf-8") as f:
                words = f.read().split()
        except OSError:
            words = ["ro"]
        words = [w for w in words if not w.startswith(("root=", "BOOT_IMAGE="))]
        return " ".join([f"root=ZFS={dataset}", *words])

    def install(self, be: BootEnv, boot_dir: str, version: str) -> None:
        """Put `version`'s kernel and initrd from `boot_dir` on the ESP
        (unless a file with the same content is there) and write the BE's
        loader entry; then drop the files no entry needs."""
        names = [f"vmlinuz-{version}"]
        if os.path.exists(os.path.join(boot_dir, f"initrd.img-{version}")):
            names.append(f"initrd.img-{version}")
        crash_point("sdboot-kernel", "before")
        stored = [self._store(be, os.path.join(boot_dir, name), name) for name in names]
        crash_point("sdboot-kernel", "after")
        title = " ".join((be.title or be.name).split())
        lines = [f"title   {title} (bootenv {be.name})", f"version {version}", f"linux   {stored[0]}"]
        if len(stored) > 1:
            lines.append(f"initrd  {stored[1]}")
        lines.append(f"options {self._cmdline(be.dataset)}")
        path = self.entry_path(be.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        crash_point("sdboot-entry", "before")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(path + ".tmp", path)
        crash_point("sdboot-entry", "after")
        shutil.rmtree(self.kernel_dir(be.name), ignore_errors=True)  # an older version's per-BE copies
        self.collect()

    def _store(self, be: BootEnv, source: str, name: str) -> str:
        """Copy `source` into the ESP's file store once per content; return
        its path as systemd-boot sees it (/bootenv/files/...)."""
        try:
            stored = f"{file_digest(source)}-{name}"
            dest = os.path.join(self.files_dir(), stored)
            if not os.path.exists(dest):
                os.makedirs(self.files_dir(), exist_ok=True)
                tmp = os.path.join(self.files_dir(), f".{stored}.tmp")
                try:
                    shutil.copyfile(source, tmp)
                    os.replace(tmp, dest)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
        except OSError as exc:
            hint = " (the ESP is full: destroy old boot environments to free it)" if exc.errno == errno.ENOSPC else ""
            raise OperationFailed(f"copy the kernel of {be.name} to the ESP: {exc}{hint}") from exc
        return f"/{FILES}/{stored}"

    def entries(self) -> dict[str, str]:
        """bootenv's loader entries on the ESP: file name -> text."""
        folder = os.path.join(self.esp, "loader", "entries")
        found = {}
        try:
            names = os.listdir(folder)
        except OSError:
            return found
        for name in names:
            if name.startswith(ENTRY_PREFIX) and name.endswith(".conf"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    found[name] = f.read()
        return found

    def collect(self) -> None:
        """Remove the stored kernels and initrds no bootenv entry names."""
        needed = {os.path.basename(p) for text in self.entries().values() for p in _FILE_LINE.findall(text)}
        try:
            stored = os.listdir(self.files_dir())
        except OSError:
            return
        for name in stored:
            if name not in needed and not name.startswith("."):
                os.unlink(os.path.join(self.files_dir(), name))

    # ------------------------------------------------------------ phases

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        layout = probe_boot(self.runner, self.root, self.running, self.boot_root)
        shared = self.path("/", "boot")
        version = check_kernel(be.name, self.path(mountpoint), layout, shared)
        boot_dir = shared if layout.shared else self.path(mountpoint, "boot")
        self.install(be, boot_dir, version)

    def post_activate(self, be: BootEnv) -> None:
        self.runner.run(["bootctl", "set-default", self.entry_id(be.name)], mutating=True)

    def set_oneshot(self, be: BootEnv) -> None:
        self.runner.run(["bootctl", "set-oneshot", self.entry_id(be.name)], mutating=True)

    def clear_oneshot(self) -> None:
        self.runner.run(["bootctl", "set-oneshot", ""], mutating=True)

    def post_create(self, be: BootEnv) -> None:
        if not (self.running and be.origin_be and self.be_root and f"{self.be_root}/{be.origin_be}" == self.running):
            return  # cloned from another BE: its entry is written when it is activated
        from .kernels import kernel_versions, module_versions

        boot_dir = self.path("/", "boot")
        have = set(module_versions(self.root))
        usable = [v for v in kernel_versions(boot_dir) if v in have]
        if usable:
            self.install(be, boot_dir, max(usable, key=version_key))

    def post_destroy(self, name: str) -> None:
        if os.path.exists(self.entry_path(name)):
            os.unlink(self.entry_path(name))
        shutil.rmtree(self.kernel_dir(name), ignore_errors=True)
        self.collect()

    def stray_entries(self, names: set[str]) -> list[str]:
        found = []
        for entry in self.entries():
            name = entry[len(ENTRY_PREFIX) : -len(".conf")]
            if name not in names:
                found.append(name)
        return sorted(found)

    def post_rename(self, old: str, new: str) -> None:
        old_entry, new_entry = self.entry_path(old), self.entry_path(new)
        if os.path.isdir(self.kernel_dir(old)):
            os.replace(self.kernel_dir(old), self.kernel_dir(new))
        if os.path.exists(old_entry):
            with open(old_entry, encoding="utf-8") as f:
                text = f.read()
            dataset_old = f"{self.be_root}/{old}"
            text = text.replace(f"/bootenv/{old}/", f"/bootenv/{new}/").replace(
                f"root=ZFS={dataset_old}", f"root=ZFS={self.be_root}/{new}"
            ).replace(f"(bootenv {old})", f"(bootenv {new})")
            with open(new_entry, "w", encoding="utf-8") as f:
                f.write(text)
            os.unlink(old_entry)
        if self._efi("LoaderEntryDefault") == self.entry_id(old):
            self.runner.run(["bootctl", "set-default", self.entry_id(new)], mutating=True)
