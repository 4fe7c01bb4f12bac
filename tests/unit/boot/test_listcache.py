"""zfs-mount-generator's cache of the boot pool, as activate leaves it in
the BE it activates (bootenv.boot.listcache.py)."""

from __future__ import annotations

from bootenv.boot.listcache import cache_path, point_at_boot_half, with_boot_half_on

# zed's lines (history_event-zfs-list-cacher.sh): name, mountpoint, canmount, atime, ...
CACHE = (
    "bpool\t/boot\toff\ton\ton\ton\ton\toff\ton\toff\t-\tnone\t-\t-\t-\t-\t-\t-\t-\t-\n"
    "bpool/BOOT\tnone\toff\ton\ton\ton\ton\toff\ton\toff\t-\tnone\t-\t-\t-\t-\t-\t-\t-\t-\n"
    "bpool/BOOT/debian\t/boot\ton\ton\ton\ton\ton\toff\ton\toff\t-\tnone\t-\t-\t-\t-\t-\t-\t-\t-\n"
    "bpool/grub\t/boot/grub\ton\ton\ton\ton\ton\toff\ton\toff\t-\tnone\t-\t-\t-\t-\t-\t-\t-\t-\n"
)


def canmount(text: str) -> dict[str, str]:
    return {line.split("\t")[0]: line.split("\t")[2] for line in text.splitlines()}


def test_the_activated_half_is_on_and_added_when_missing():
    new = with_boot_half_on(CACHE, "bpool/BOOT", "bpool/BOOT/ck")
    assert canmount(new) == {"bpool": "off", "bpool/BOOT": "off", "bpool/BOOT/debian": "noauto",
                             "bpool/grub": "on", "bpool/BOOT/ck": "on"}
    line = new.splitlines()[-1].split("\t")
    assert line[:3] == ["bpool/BOOT/ck", "/boot", "on"] and len(line) == len(CACHE.splitlines()[2].split("\t"))
    back = with_boot_half_on(new, "bpool/BOOT", "bpool/BOOT/debian")
    assert canmount(back)["bpool/BOOT/debian"] == "on" and canmount(back)["bpool/BOOT/ck"] == "noauto"
    assert with_boot_half_on(back, "bpool/BOOT", "bpool/BOOT/debian") == back


def test_point_at_boot_half_edits_the_file_only_when_there(tmp_path):
    assert not point_at_boot_half(str(tmp_path), "bpool", "bpool/BOOT", "bpool/BOOT/ck")
    path = cache_path(str(tmp_path), "bpool")
    import os

    os.makedirs(os.path.dirname(path))
    open(path, "w").write(CACHE)
    assert point_at_boot_half(str(tmp_path), "bpool", "bpool/BOOT", "bpool/BOOT/ck")
    assert canmount(open(path).read())["bpool/BOOT/ck"] == "on"
