"""A bootloader driver that records every phase it is called for.

Used by the unit tests (in memory) and by CLI tests (`BOOTENV_BOOTLOADER=
recording:/path/log`, one line per call appended to the file), so tests can
assert which phases ran, in which order, with which BE.
"""

from __future__ import annotations

from typing import Optional

from ..model import BootEnv
from .base import Bootloader


class RecordingBootloader(Bootloader):
    name = "recording"

    def __init__(self, log_path: Optional[str] = None):
        self.calls: list[tuple[str, ...]] = []
        self.log_path = log_path

    def _record(self, *call: str) -> None:
        self.calls.append(call)
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(" ".join(call) + "\n")

    def pre_activate(self, be: BootEnv) -> None:
        self._record("pre_activate", be.name)

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        self._record("mid_activate", be.name)

    def post_activate(self, be: BootEnv) -> None:
        self._record("post_activate", be.name)

    def post_create(self, be: BootEnv) -> None:
        self._record("post_create", be.name)

    def post_destroy(self, name: str) -> None:
        self._record("post_destroy", name)

    def post_rename(self, old: str, new: str) -> None:
        self._record("post_rename", old, new)
