"""Pick the bootloader driver: `--bootloader` / BOOTENV_BOOTLOADER, else
`bootloader = NAME` in /etc/bootenv/bootenv.conf (BOOTENV_CONFIG), else
detect the one this machine boots with:

    systemd-boot  the firmware says so (the LoaderInfo EFI variable names
                  systemd-boot) and the ESP has loader/loader.conf
    zfsbootmenu   /etc/zfsbootmenu exists (its generator's configuration)
    grub          /boot/grub/grub.cfg exists and update-grub is installed
    bootfs        anything else: only the pool's bootfs is set

Drivers are imported only once chosen (start-up stays fast).
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

from .. import config
from ..errors import UsageError
from .base import Bootloader
from .efivars import LOADER_GUID, loader_var

KNOWN = ("auto", "bootfs", "grub", "systemd-boot", "zfsbootmenu", "recording")
CONFIG = config.PATH
EFI_GUID = LOADER_GUID  # systemd-boot's loader vendor GUID


def configured(path: Optional[str] = None) -> Optional[str]:
    """The `bootloader = NAME` line of the configuration file, if any
    (KEY = VALUE lines, # comments: bootenv/config.py)."""
    return config.read(path).get("bootloader")


def detect_bootloader(root: str = "/", which=shutil.which) -> str:
    """Given the system's root directory, name the bootloader it uses."""
    loader_info = loader_var("LoaderInfo", os.path.join(root, "sys/firmware/efi/efivars")) or ""
    if "systemd-boot" in loader_info:
        return "systemd-boot"
    if os.path.isdir(os.path.join(root, "etc/zfsbootmenu")):
        return "zfsbootmenu"
    if os.path.exists(os.path.join(root, "boot/grub/grub.cfg")) and (
        which("update-grub") or os.path.exists(os.path.join(root, "usr/sbin/update-grub"))
    ):
        return "grub"
    return "bootfs"


def open_bootloader(spec: Optional[str], *, detect: bool = True) -> Bootloader:
    """Given a spec (`auto`, `bootfs`, `grub`, `systemd-boot`, `zfsbootmenu`,
    `recording[:LOGFILE]`, or None for the configured / detected one),
    return the driver. With `detect` False (a fake pool) the default is
    plain bootfs: tests never drive the host's bootloader. Raise
    UsageError for an unknown one."""
    if not spec:
        spec = (configured() if detect else None) or ("auto" if detect else "bootfs")
    kind, _, arg = spec.partition(":")
    if kind == "auto":
        kind = detect_bootloader() if detect else "bootfs"
    if kind == "bootfs":
        return Bootloader()
    if kind == "recording":
        from .recording import RecordingBootloader

        return RecordingBootloader(arg or None)
    if kind == "grub":
        from .grub import GrubBootloader

        return GrubBootloader()
    if kind == "systemd-boot":
        from .systemd_boot import SystemdBootBootloader

        return SystemdBootBootloader()
    if kind == "zfsbootmenu":
        from .zfsbootmenu import ZfsBootMenuBootloader

        return ZfsBootMenuBootloader()
    raise UsageError(f"unknown bootloader {spec!r} (known: {', '.join(KNOWN)})")
