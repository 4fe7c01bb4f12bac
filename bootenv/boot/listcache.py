"""zfs-mount-generator's cache (/etc/zfs/zfs-list.cache/POOL), as far as a
paired /boot needs it.

On systems set up as the OpenZFS guides say, systemd mounts ZFS datasets
from this cache (one tab-separated line per dataset: name, mountpoint,
canmount, ...), which zed rewrites when a property changes, in the BE that
runs. A BE activated with its own boot half (engine.plan_boot_mount) boots
with ITS copy of the cache, written when it was checkpointed: it names the
old boot half canmount=on and not its own, so the generator would mount
the old /boot. Activate therefore makes the boot pool's cache in the BE it
activates say what the pool will say: that BE's boot half on, every other
boot half noauto (a line copied from a sibling when the half is missing,
as zed would add it). Nothing else in the file changes.
"""

from __future__ import annotations

import os

CACHE_DIR = "etc/zfs/zfs-list.cache"


def cache_path(root: str, pool: str) -> str:
    return os.path.join(root, CACHE_DIR, pool)


def with_boot_half_on(text: str, boot_root: str, half: str) -> str:
    """Given the cache's text, return it with `half` (a filesystem directly
    under `boot_root`) canmount=on and every other filesystem directly
    under `boot_root` canmount=noauto (only those that were on or noauto:
    off stays off)."""
    lines = text.splitlines()
    prefix = boot_root + "/"
    out: list[str] = []
    have = False
    sibling = None
    for line in lines:
        cols = line.split("\t")
        name = cols[0]
        if len(cols) > 2 and name.startswith(prefix) and "/" not in name[len(prefix):]:
            sibling = sibling or cols
            if name == half:
                have = True
                cols[2] = "on"
            elif cols[2] == "on":
                cols[2] = "noauto"
            line = "\t".join(cols)
        out.append(line)
    if not have and sibling is not None:
        out.append("\t".join([half, *sibling[1:2], "on", *sibling[3:]]))
    return "".join(line + "\n" for line in out)


def point_at_boot_half(root: str, pool: str, boot_root: str, half: str) -> bool:
    """Rewrite the boot pool's cache in the system at `root` (if it has
    one) so that it mounts `half` at /boot. Return whether it had one."""
    path = cache_path(root, pool)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return False
    new = with_boot_half_on(text, boot_root, half)
    if new != text:
        tmp = path + ".bootenv-new"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(tmp, path)
    return True
