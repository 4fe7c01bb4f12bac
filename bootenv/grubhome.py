"""`bootenv doctor --fix`: give GRUB a home every BE shares.

GRUB reads its menu and environment from the ONE directory its prefix
names, fixed when grub-install ran. A manual root-on-ZFS install leaves
/boot/grub inside rpool/ROOT/debian, and the OpenZFS guides inside
bpool/BOOT/debian: after `bootenv activate`, update-grub writes the new
default into the BE GRUB does not read, so activation is refused there
(boot/grub.py). The fix is zedenv's: a dataset outside every BE, on the
pool GRUB reads already (so GRUB can read it: same pool, same features),
mounted at /boot/grub, then grub-install (the prefix now names it) and
update-grub. As a plan: `-n` shows it, nothing is destroyed, and the old
directory stays where it was (hidden under the new mount) so a step that
fails leaves the machine booting as before.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Optional

from .errors import Refused
from .plan import Kind, Plan
from .run import Runner
from .zfs.base import pool_of

GRUB_DIR = "/boot/grub"
HOME_NAME = "grub"  # POOL/grub, as zedenv names it


def grub_dir_holder(mounts: Iterable[tuple[str, str, str]], engine) -> Optional[str]:
    """The BE dataset or paired boot half holding /boot/grub (the
    filesystem of the longest mount point above it), or None when GRUB's
    directory is on something every BE shares."""
    from .doctor import fs_holding

    held = fs_holding(mounts, GRUB_DIR)
    if held is None or held[1] != "zfs":
        return None
    source = held[2]
    roots = [r for r in (engine.be_root, engine.boot_root) if r]
    return source if any(source.startswith(r + "/") for r in roots) else None


def plan_grub_home(
    engine,
    mounts: list[tuple[str, str, str]],
    *,
    runner: Runner,
    root: str = "/",
    efi: Optional[bool] = None,
) -> Optional[Plan]:
    """Plan moving GRUB's directory out of the BE that holds it into
    POOL/grub on the same pool. None when GRUB's home is shared already.
    `efi`: how GRUB boots (default: /sys/firmware/efi exists). Raise
    Refused when POOL/grub exists (an admin's dataset: never reused)."""
    holder = grub_dir_holder(mounts, engine)
    if holder is None:
        return None
    home = f"{pool_of(holder)}/{HOME_NAME}"
    if engine.zfs.exists(home):
        raise Refused(
            f"cannot give GRUB a home of its own: {home} exists already (mount it at {GRUB_DIR} yourself, "
            f"or rename it, and run bootenv doctor --fix again)"
        )
    if efi is None:
        efi = os.path.isdir(os.path.join(root, "sys/firmware/efi"))
    grub_dir = os.path.join(root, GRUB_DIR.lstrip("/"))
    staging = os.path.join(engine.mount_base, ".grub-home")
    plan = Plan(f"Give GRUB a home every boot environment shares: {GRUB_DIR} from {holder} to {home}")
    plan.notes.append(f"{GRUB_DIR} is inside {holder}: GRUB reads the menu and environment of that BE only, so activate is refused")
    plan.notes.append(f"the old {GRUB_DIR} stays in {holder}, under the new mount")
    plan.add(
        f"create {home} (canmount=noauto, mountpoint={GRUB_DIR}) on the pool GRUB reads",
        lambda: engine.zfs.create(home, {"canmount": "noauto", "mountpoint": GRUB_DIR}),
        undo=lambda: engine.zfs.destroy(home),
        kind=Kind.OTHER,
    )
    plan.add(
        f"copy {GRUB_DIR} into {home}",
        lambda: _copy_into(engine, runner, home, grub_dir, staging),
        kind=Kind.OTHER,
    )
    plan.add(
        f"mount {home} at {GRUB_DIR}, at every boot (canmount=on)",
        lambda: _mount_home(engine, home, grub_dir),
        undo=lambda: _unmount_quietly(engine, home),
        kind=Kind.OTHER,
    )
    for argv in _grub_install_commands(runner, grub_dir, efi):
        plan.add(" ".join(argv) + " (GRUB's prefix: the new home)", _run(runner, argv), kind=Kind.BOOTLOADER)
    plan.add("update-grub (the menu in the new home)", _run(runner, ["update-grub"]), kind=Kind.BOOTLOADER)
    return plan


def _run(runner: Runner, argv: list[str]) -> Callable[[], None]:
    return lambda: runner.run(argv, mutating=True)


def _copy_into(engine, runner: Runner, home: str, grub_dir: str, staging: str) -> None:
    """Copy GRUB's files into `home`, mounted at `staging` for the moment."""
    os.makedirs(staging, exist_ok=True)
    engine.zfs.mount(home, staging)
    try:
        runner.run(["cp", "-a", "--", grub_dir + "/.", staging + "/"], mutating=True)
    finally:
        engine.zfs.unmount(home)
        os.rmdir(staging)


def _mount_home(engine, home: str, grub_dir: str) -> None:
    # canmount=on neither mounts nor unmounts (libzfs); the mount is ours.
    engine.zfs.set_props(home, {"canmount": "on"})
    engine.zfs.mount(home, grub_dir)


def _unmount_quietly(engine, home: str) -> None:
    from .zfs.base import ZfsError

    try:
        engine.zfs.unmount(home)
    except ZfsError:
        pass  # undo of a mount that may not have happened


def _grub_install_commands(runner: Runner, grub_dir: str, efi: bool) -> list[list[str]]:
    """grub-install as Debian's packages run it: UEFI with its defaults
    (the ESP at /boot/efi); BIOS onto every disk of the pool holding GRUB's
    directory (grub-probe: one disk, or each side of a mirror)."""
    if efi:
        return [["grub-install"]]
    out = runner.run(["grub-probe", "--target=disk", grub_dir], check=False).stdout
    disks = list(dict.fromkeys(line.strip() for line in out.splitlines() if line.strip()))
    if not disks:
        raise Refused(f"cannot tell which disk GRUB boots from (grub-probe --target=disk {grub_dir} named none)")
    return [["grub-install", "--target=i386-pc", disk] for disk in disks]
