"""Choosing the bootloader driver: spec, configuration file, detection."""

from __future__ import annotations

import pytest

from bootenv.boot import factory
from bootenv.boot.factory import EFI_GUID, detect_bootloader, open_bootloader
from bootenv.errors import UsageError


def test_specs():
    assert open_bootloader("bootfs").name == "bootfs"
    assert open_bootloader("grub").name == "grub"
    assert open_bootloader("systemd-boot").name == "systemd-boot"
    assert open_bootloader("zfsbootmenu").name == "zfsbootmenu"
    assert open_bootloader("recording:/tmp/x").log_path == "/tmp/x"
    with pytest.raises(UsageError, match="unknown bootloader 'lilo'"):
        open_bootloader("lilo")


def test_fake_pools_never_detect(monkeypatch, tmp_path):
    conf = tmp_path / "bootenv.conf"
    conf.write_text("bootloader = grub\n")
    monkeypatch.setenv("BOOTENV_CONFIG", str(conf))
    assert open_bootloader(None, detect=False).name == "bootfs"
    assert open_bootloader("auto", detect=False).name == "bootfs"
    assert open_bootloader(None).name == "grub"


def test_config_file(tmp_path):
    conf = tmp_path / "c"
    conf.write_text("# comment\nother = 1\nbootloader = zfsbootmenu  # ours\n")
    assert factory.configured(str(conf)) == "zfsbootmenu"
    assert factory.configured(str(tmp_path / "missing")) is None


def test_detection(tmp_path):
    none = lambda _: None  # noqa: E731
    assert detect_bootloader(str(tmp_path), which=none) == "bootfs"
    (tmp_path / "boot/grub").mkdir(parents=True)
    (tmp_path / "boot/grub/grub.cfg").write_text("")
    assert detect_bootloader(str(tmp_path), which=none) == "bootfs"  # no update-grub
    assert detect_bootloader(str(tmp_path), which=lambda _: "/usr/sbin/update-grub") == "grub"
    (tmp_path / "etc/zfsbootmenu").mkdir(parents=True)
    assert detect_bootloader(str(tmp_path), which=none) == "zfsbootmenu"
    efivars = tmp_path / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True)
    (efivars / f"LoaderInfo-{EFI_GUID}").write_bytes(b"\x06\0\0\0" + "systemd-boot 252\0".encode("utf-16-le"))
    assert detect_bootloader(str(tmp_path), which=none) == "systemd-boot"
