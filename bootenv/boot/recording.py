"""A bootloader driver that records every phase it is called for.

Used by the unit tests (in memory) and by CLI tests (`BOOTENV_BOOTLOADER=
recording:/path/log`, one line per call appended to the file), so tests can
assert which phases ran, in which order, with which BE.

It also models a bootloader with a real one-shot (like systemd-boot's
LoaderEntryOneShot, or GRUB with its environment on a writable partition):
`set_oneshot` stores the BE (in memory, or in LOG.oneshot next to the log)
and the simulated firmware (`take_oneshot`, used by the tests' fake
reboots) consumes it, whether or not the BE then comes up.
"""

from __future__ import annotations

import os
from typing import Optional

from ..model import BootEnv
from .base import Bootloader


class RecordingBootloader(Bootloader):
    name = "recording"
    oneshot = True

    def __init__(self, log_path: Optional[str] = None):
        super().__init__()
        self.calls: list[tuple[str, ...]] = []
        self.log_path = log_path
        self._oneshot: Optional[str] = None

    @property
    def oneshot_expires(self) -> bool:
        return True

    def _record(self, *call: str) -> None:
        self.calls.append(call)
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(" ".join(call) + "\n")

    # ------------------------------------------------ the modelled one-shot

    @property
    def oneshot_path(self) -> Optional[str]:
        return self.log_path + ".oneshot" if self.log_path else None

    def pending_oneshot(self) -> Optional[str]:
        """The BE name the next boot will use once, if any."""
        path = self.oneshot_path
        if path is None:
            return self._oneshot
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def take_oneshot(self) -> Optional[str]:
        """What the firmware does at boot: return the one-shot BE and forget it."""
        name = self.pending_oneshot()
        self._write_oneshot(None)
        return name

    def _write_oneshot(self, name: Optional[str]) -> None:
        self._oneshot = name
        path = self.oneshot_path
        if path is None:
            return
        if name is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(name + "\n")

    def next_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        name = self.pending_oneshot()
        return f"{be_root}/{name}" if name else bootfs

    # ------------------------------------------------ phases

    def pre_activate(self, be: BootEnv) -> None:
        self._record("pre_activate", be.name)

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        self._record("mid_activate", be.name)

    def post_activate(self, be: BootEnv) -> None:
        self._record("post_activate", be.name)

    def set_oneshot(self, be: BootEnv) -> None:
        self._record("set_oneshot", be.name)
        self._write_oneshot(be.name)

    def clear_oneshot(self) -> None:
        self._record("clear_oneshot")
        self._write_oneshot(None)

    def post_create(self, be: BootEnv) -> None:
        self._record("post_create", be.name)

    def post_destroy(self, name: str) -> None:
        self._record("post_destroy", name)

    def post_rename(self, old: str, new: str) -> None:
        self._record("post_rename", old, new)
