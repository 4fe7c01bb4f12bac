"""Kernels and modules: which kernel would boot a BE, and does the BE have
its modules.

The most reported cause of broken rollbacks is /boot outside the BE (a
separate partition every BE shares): roll the root back and the old root
boots the new kernel, whose /lib/modules directory it does not have. So
before a BE becomes the next boot, the driver (with the BE mounted) asks
`check_kernel`: the newest vmlinuz-VERSION the bootloader will pick (from
the shared /boot when there is one, else from the BE's own /boot) must
have /lib/modules/VERSION inside the BE, or activation is refused with a
message that says which kernel, which modules, and what to do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

from ..errors import Refused
from ..run import CommandFailed, Runner

_PIECES = re.compile(r"(\d+)|(\D+)")


def version_key(version: str) -> tuple:
    """Sort key for kernel versions: 6.1.0-9-amd64 < 6.1.0-28-amd64."""
    return tuple((0, int(d), "") if d else (1, 0, s) for d, s in _PIECES.findall(version))


def kernel_versions(boot_dir: str) -> list[str]:
    """The versions of the vmlinuz-VERSION files in `boot_dir`, oldest
    first (an empty list when there are none or no such directory)."""
    try:
        names = os.listdir(boot_dir)
    except OSError:
        return []
    versions = [n[len("vmlinuz-") :] for n in names if n.startswith("vmlinuz-") and not n.endswith((".bak", ".old"))]
    return sorted(versions, key=version_key)


def module_versions(root: str) -> list[str]:
    """The kernel versions with a modules directory in the tree at `root`."""
    found: set[str] = set()
    for sub in ("lib/modules", "usr/lib/modules"):
        try:
            found.update(n for n in os.listdir(os.path.join(root, sub)) if os.path.isdir(os.path.join(root, sub, n)))
        except OSError:
            pass
    return sorted(found, key=version_key)


def initrd_of(boot_dir: str, version: str) -> Optional[str]:
    """The initramfs file for kernel `version` in `boot_dir` (the names
    42_bootenv and 10_linux look for), or None."""
    for name in (f"initrd.img-{version}", f"initrd-{version}.img", f"initramfs-{version}.img"):
        if os.path.isfile(os.path.join(boot_dir, name)):
            return name
    return None


def boot_record(root: str, referenced: int) -> str:
    """Given a BE's tree at `root` and the BE's `referenced`, return what
    its boot menu entry needs (the org.bootenv:kernels property):
    "ref=REFERENCED boot=VERSION/INITRD,... modules=VERSION,...", the
    kernels in its /boot newest first (INITRD empty when it has none) and
    the versions it has modules for. 42_bootenv trusts it while the BE's
    `referenced` is unchanged, and mounts the BE to look otherwise."""
    boot_dir = os.path.join(root, "boot")
    kernels = list(reversed(kernel_versions(boot_dir)))
    boot = ",".join(f"{v}/{initrd_of(boot_dir, v) or ''}" for v in kernels)
    modules = ",".join(reversed(module_versions(root)))
    return f"ref={referenced} boot={boot} modules={modules}"


def parse_boot_record(value: Optional[str]) -> Optional[dict]:
    """Given an org.bootenv:kernels value, return {"ref": int, "boot":
    [(version, initrd or None), ...], "modules": [version, ...]}, or None
    when it is missing or not one."""
    if not value:
        return None
    fields = dict(word.partition("=")[::2] for word in value.split())
    if not fields.get("ref", "").isdigit() or "boot" not in fields or "modules" not in fields:
        return None
    boot = []
    for item in filter(None, fields["boot"].split(",")):
        version, _, initrd = item.partition("/")
        boot.append((version, initrd or None))
    return {"ref": int(fields["ref"]), "boot": boot, "modules": [m for m in fields["modules"].split(",") if m]}


@dataclass(frozen=True)
class BootLayout:
    """Where /boot is: inside the BE (`shared` False) or a filesystem every
    BE shares (a separate partition, or a dataset outside the BE root)."""

    shared: bool
    fstype: Optional[str] = None
    source: Optional[str] = None
    paired: bool = False  # /boot is the BE's own half on a boot pool (bpool/BOOT/NAME)

    def describe(self) -> str:
        if self.paired:
            return f"/boot is each boot environment's own dataset on the boot pool (running: {self.source})"
        if not self.shared:
            return "/boot is inside the boot environment"
        return f"/boot is a separate {self.fstype or ''} filesystem ({self.source}) shared by every boot environment".replace("  ", " ")


def probe_boot(runner: Runner, root: str, be_dataset: Optional[str], boot_root: Optional[str] = None) -> BootLayout:
    """Given the running system's root, say whether its /boot is a separate
    mount outside the running BE (`findmnt --mountpoint /boot`); with the
    engine's `boot_root`, a /boot from it is the BE's own (paired: each BE
    is mounted with its own boot half at /boot)."""
    target = os.path.join(root, "boot")
    try:
        out = runner.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--mountpoint", target], check=False).stdout
    except CommandFailed:
        return BootLayout(False)
    line = out.strip().splitlines()[0] if out.strip() else ""
    if not line:
        return BootLayout(False)
    fstype, _, source = line.partition(" ")
    source = source.strip()
    if fstype == "zfs" and be_dataset and (source == be_dataset or source.startswith(be_dataset + "/")):
        return BootLayout(False, fstype, source)
    if fstype == "zfs" and boot_root and source.startswith(boot_root + "/"):
        return BootLayout(False, fstype, source, paired=True)
    return BootLayout(True, fstype, source)


def check_kernel(be_name: str, be_path: str, layout: BootLayout, shared_boot: str) -> str:
    """Given a BE mounted at `be_path`, return the kernel version that will
    boot it. /boot inside the BE: its newest vmlinuz, which must have
    /lib/modules/VERSION in the BE. /boot shared (`shared_boot`): the newest
    kernel there that the BE has modules for (what 42_bootenv and the
    systemd-boot driver pick). Raise Refused when there is no kernel, or no
    kernel with modules."""
    boot_dir = shared_boot if layout.shared else os.path.join(be_path, "boot")
    where = layout.describe()
    versions = kernel_versions(boot_dir)
    if not versions:
        raise Refused(f"cannot activate {be_name}: no kernel (vmlinuz-*) in {'/boot' if layout.shared else be_name + ':/boot'} ({where})")
    have = module_versions(be_path)
    having = ", ".join(have) if have else "none"
    if layout.shared:
        matching = [v for v in versions if v in have]
        if matching:
            return matching[-1]
        raise Refused(
            f"cannot activate {be_name}: {where} and holds kernel {', '.join(versions)}, "
            f"but {be_name} has modules only for: {having}; booting it would leave the kernel without its modules. "
            f"Install a kernel {be_name} has modules for into /boot, or keep /boot inside the boot environments"
        )
    kernel = versions[-1]
    if kernel in have:
        return kernel
    raise Refused(
        f"cannot activate {be_name}: kernel {kernel} in its /boot would boot, but {be_name} has no /lib/modules/{kernel} "
        f"(it has modules for: {having}); reinstall the kernel package inside it (bootenv mount {be_name}; chroot)"
    )
