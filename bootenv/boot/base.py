"""The bootloader driver interface.

The engine decides *what* boots next (the pool's `bootfs`, which is also
what ZFSBootMenu boots); a driver makes a particular bootloader agree, in
phases like zectl's plugins: pre/post-activate around the switch, and
post-create/destroy/rename so menus stay current. Drivers that need to look
inside a BE (kernels, modules) get it mounted during `mid_activate`.
"""

from __future__ import annotations

from typing import Optional

from ..model import BootEnv


class Bootloader:
    """A driver that needs nothing beyond the pool's bootfs (ZFSBootMenu's
    default behaviour). Subclasses override the phases they need."""

    name = "bootfs"
    # Whether mid_activate wants the BE mounted (kernels copied out, etc.).
    needs_mount = False

    def next_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        """Given the pool's bootfs, return the dataset the next boot will use
        (a driver with its own default, e.g. GRUB's saved_entry, overrides)."""
        return bootfs

    def pre_activate(self, be: BootEnv) -> None:
        """Before bootfs moves to `be`: refuse (raise) if it cannot boot."""

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        """With `be` mounted at `mountpoint` when needs_mount, else None."""

    def post_activate(self, be: BootEnv) -> None:
        """After bootfs points at `be`: make the bootloader's default agree."""

    def post_create(self, be: BootEnv) -> None:
        """A new BE exists (regenerate menus)."""

    def post_destroy(self, name: str) -> None:
        """BE `name` is gone."""

    def post_rename(self, old: str, new: str) -> None:
        """BE `old` is now called `new`."""
