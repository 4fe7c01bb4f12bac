"""The bootloader driver interface.

The engine decides *what* boots next (the pool's `bootfs`, which is also
what ZFSBootMenu boots); a driver makes a particular bootloader agree, in
phases like zectl's plugins: pre/mid/post-activate around the switch, and
post-create/destroy/rename so menus stay current. Drivers that need to look
inside a BE (kernels, modules) get it mounted during `mid_activate`, which
the engine runs before it changes anything, so a refusal there (a kernel
without modules) leaves the pool as it was.

Trial boots (`bootenv activate NAME --once`, see trial.py) use the
driver's one-shot when it has one (`oneshot`): GRUB's `bootenv_once`
variable, systemd-boot's LoaderEntryOneShot. `oneshot_expires` says whether
the bootloader itself consumes it (a true one-shot even when the BE dies
before userspace); when it does not, bootenv-boot.service clears it early
in the trial boot. A driver without a one-shot (plain bootfs, ZFSBootMenu)
gets bootfs pointed at the trial BE until that early service puts it back.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from ..model import BootEnv
from ..run import Runner, default_runner


class Bootloader:
    """A driver that needs nothing beyond the pool's bootfs (ZFSBootMenu's
    default behaviour). Subclasses override the phases they need."""

    name = "bootfs"
    # Whether mid_activate wants the BE mounted (kernels copied out, etc.).
    needs_mount = False
    # Whether set_oneshot/clear_oneshot work (boot a BE once, then the default).
    oneshot = False

    def __init__(self, *, root: str = "/", runner: Optional[Runner] = None):
        # `root` is where the running system's files are (tests: a temp dir).
        self.root = root
        self.runner = runner or default_runner
        self.zfs: Any = None
        self.be_root: Optional[str] = None
        self.running: Optional[str] = None
        self.boot_root: Optional[str] = None

    @property
    def oneshot_expires(self) -> bool:
        """Whether the bootloader clears its own one-shot when it boots it
        (so a trial BE that never reaches userspace is still booted once)."""
        return False

    def bind(self, zfs: Any, be_root: str, running: Optional[str], boot_root: Optional[str] = None) -> None:
        """The engine hands the driver its ZFS backend, BE root, running
        dataset (drivers that keep per-BE properties need them) and boot
        root (where /boot is paired: each BE's own bpool/BOOT/NAME)."""
        self.zfs = zfs
        self.be_root = be_root
        self.running = running
        self.boot_root = boot_root

    def path(self, mountpoint: Optional[str], *parts: str) -> str:
        """A path inside a BE mounted at `mountpoint` ('/' is the running
        system, i.e. `self.root`)."""
        base = self.root if mountpoint in (None, "/") else mountpoint
        return os.path.join(base, *[p.lstrip("/") for p in parts])

    def next_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        """Given the pool's bootfs, return the dataset the next boot will use
        (a driver with its own default, e.g. GRUB's, overrides)."""
        return bootfs

    def default_boot(self, be_root: str, bootfs: Optional[str]) -> Optional[str]:
        """The dataset booted once a pending one-shot is used up."""
        return bootfs

    def pre_activate(self, be: BootEnv) -> None:
        """Before bootfs moves to `be`: refuse (raise) if it cannot boot."""

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        """With `be` mounted at `mountpoint` when needs_mount, else None."""

    def post_activate(self, be: BootEnv) -> None:
        """After bootfs points at `be`: make the bootloader's default agree."""

    def set_oneshot(self, be: BootEnv) -> None:
        """Boot `be` on the next boot only (only when `oneshot`)."""
        raise NotImplementedError(f"the {self.name} driver has no one-shot boot")

    def clear_oneshot(self) -> None:
        """Forget a pending one-shot, if any (only when `oneshot`)."""

    def post_create(self, be: BootEnv) -> None:
        """A new BE exists (regenerate menus)."""

    # A driver whose menu is generated as a whole (GRUB: update-grub, ~1 min
    # under emulation) says so with menu_changed(); inside batch() that is
    # done once, at the end: a prune of five, or a hook's checkpoint and the
    # retention after it, cost one regeneration, not one each.
    _batching = 0
    _stale = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Regenerate the menu at most once, when the outermost batch ends
        (whatever ended it: the menu must match the BEs that are left)."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching and self._stale:
                self._stale = False
                self.regenerate_menu()

    def menu_changed(self) -> None:
        """The menu must be regenerated: now, or at the end of the batch."""
        if self._batching:
            self._stale = True
        else:
            self.regenerate_menu()

    def regenerate_menu(self) -> None:
        """Regenerate the whole menu (drivers that have one)."""

    def post_destroy(self, name: str) -> None:
        """BE `name` is gone."""

    def stray_entries(self, names: set[str]) -> list[str]:
        """The BE names this driver keeps boot entries for that are not in
        `names` (the BEs that exist): what a destroy killed before its
        bootloader step leaves (bootenv repair calls post_destroy for each)."""
        return []

    def post_rename(self, old: str, new: str) -> None:
        """BE `old` is now called `new`."""
