"""The ZFSBootMenu driver.

ZFSBootMenu boots the pool's `bootfs` (which the engine sets) with the
highest kernel in that BE's own /boot, and reads its per-BE settings from
`org.zfsbootmenu:*` properties. So the driver:

- keeps those properties consistent across clones: a new BE gets the
  values its source BE has set locally (an inherited value is inherited by
  the clone too and is left alone); `org.zfsbootmenu:active` is not copied
  (it hides a BE from the menu, a per-BE choice);
- checks, with the BE mounted, that the kernel ZFSBootMenu would pick has
  its modules in the BE (kernels.py; ZFSBootMenu needs /boot inside the BE).

ZFSBootMenu has no one-shot and imports pools read-only, so it cannot count
boots: a trial boot (`activate --once`) points bootfs at the trial BE and
bootenv-boot.service points it back as soon as the trial boot starts
(trial.py). A BE that dies before userspace is booted again until the
admin picks another one in the menu.
"""

from __future__ import annotations

from typing import Optional

from ..model import BootEnv
from .base import Bootloader
from .kernels import BootLayout, check_kernel

ZBM_PROPS = (
    "org.zfsbootmenu:commandline",
    "org.zfsbootmenu:keysource",
    "org.zfsbootmenu:kernel",
    "org.zfsbootmenu:rootprefix",
)


class ZfsBootMenuBootloader(Bootloader):
    name = "zfsbootmenu"
    needs_mount = True

    def mid_activate(self, be: BootEnv, mountpoint: Optional[str]) -> None:
        # ZFSBootMenu only boots kernels from the BE's own /boot.
        check_kernel(be.name, self.path(mountpoint), BootLayout(False), self.path("/", "boot"))

    def post_create(self, be: BootEnv) -> None:
        if self.zfs is None or not be.origin_be or not self.be_root:
            return
        source = f"{self.be_root}/{be.origin_be}"
        if not self.zfs.exists(source):
            return
        want = self.zfs.get_props(source, list(ZBM_PROPS))
        have = self.zfs.get_props(be.dataset, list(ZBM_PROPS))
        missing = {k: v for k, v in want.items() if have.get(k) != v}
        if missing:
            self.zfs.set_props(be.dataset, missing)
