"""contrib/bootenv.conf (/etc/bootenv/bootenv.conf in the .deb): every
setting the code reads is there, commented out at the code's default, so
the file as shipped and the file with every line uncommented choose the
same thing as no file at all."""

from __future__ import annotations

import re
from pathlib import Path

from bootenv import config
from bootenv.boot import factory
from bootenv.retention import Policy

CONF = Path(__file__).resolve().parents[2] / "contrib" / "bootenv.conf"
SETTING = re.compile(r"^#(\w+) = (\S+)$")


def commented_settings() -> dict[str, str]:
    return {m[1]: m[2] for line in CONF.read_text().splitlines() if (m := SETTING.match(line))}


def test_nothing_is_set_as_shipped():
    assert all(line == "" or line.startswith("#") for line in CONF.read_text().splitlines())
    assert factory.configured(str(CONF)) is None


def test_every_setting_at_its_default(tmp_path, monkeypatch):
    settings = commented_settings()
    # the keys bootenv reads (boot/factory.configured, retention.Policy.from_settings)
    assert settings == {
        "bootloader": "auto",
        "boot_root": "auto",
        "keep_auto": "10",
        "keep_age": "0",
        "keep_min": "3",
        "space_floor": "20",
        "prune_manual": "no",
        "auto_prune": "yes",
        "auto_prune_max": "5",
    }
    uncommented = tmp_path / "bootenv.conf"
    uncommented.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    assert factory.configured(str(uncommented)) == "auto"
    # the retention settings at their defaults: the policy of no file
    assert Policy.from_settings(config.read(str(uncommented))) == Policy()
    assert Policy.from_settings(config.read(str(tmp_path / "none.conf"))) == Policy()
    # auto is what no file means: detect (detect_bootloader)
    detected = []
    monkeypatch.setattr(factory, "detect_bootloader", lambda *a, **k: detected.append(1) or "bootfs")
    monkeypatch.setenv("BOOTENV_CONFIG", str(uncommented))
    factory.open_bootloader(None)
    monkeypatch.setenv("BOOTENV_CONFIG", str(tmp_path / "none.conf"))
    factory.open_bootloader(None)
    assert detected == [1, 1]


def test_the_drivers_it_names_are_the_known_ones():
    text = CONF.read_text()
    for driver in factory.KNOWN:
        if driver != "recording":  # tests only
            assert re.search(rf"^#\s+{re.escape(driver)}\s", text, re.M), driver
