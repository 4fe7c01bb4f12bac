"""open_backend: the one place that chooses a ZFS backend."""

from __future__ import annotations

import sys
import types

import pytest

from bootenv.zfs import factory
from bootenv.zfs.base import (
    ZfsUnavailable,
)
from bootenv.zfs.cli import ZfsCommands
from .fake_commands import FakeCommands, cmds, row, zfs  # noqa: F401 (fixtures)
from .fake_lzc import fake_lzc_module, lzc  # noqa: F401 (fixtures)


# ---------------------------------------------------------------- factory


def test_factory_named_backends(cmds, monkeypatch):
    from bootenv.zfs.lzc import LzcZfs

    assert type(factory.open_backend("cli")) is ZfsCommands
    monkeypatch.setitem(sys.modules, "libzfs_core", fake_lzc_module())
    assert type(factory.open_backend("lzc")) is LzcZfs
    with pytest.raises(ValueError):
        factory.open_backend("zfs-fuse")


def test_factory_env_and_fake(monkeypatch, tmp_path):
    opened = []
    stub = types.ModuleType("bootenv.zfs.fake")
    stub.open_fake = lambda path: opened.append(path) or "FAKE"
    monkeypatch.setitem(sys.modules, "bootenv.zfs.fake", stub)
    monkeypatch.setenv("BOOTENV_ZFS", f"fake:{tmp_path}/state.json")
    assert factory.open_backend() == "FAKE"
    assert opened == [f"{tmp_path}/state.json"]


def test_factory_auto(monkeypatch, tmp_path, cmds):
    from bootenv.zfs.lzc import LzcZfs

    monkeypatch.delenv("BOOTENV_ZFS", raising=False)
    monkeypatch.setattr(factory, "DEV_ZFS", str(tmp_path / "no-dev-zfs"))
    with pytest.raises(ZfsUnavailable, match="no-dev-zfs is missing"):
        factory.open_backend(None)
    dev = tmp_path / "zfs-dev"
    dev.write_text("")
    monkeypatch.setattr(factory, "DEV_ZFS", str(dev))
    monkeypatch.setitem(sys.modules, "libzfs_core", None)  # import fails
    assert type(factory.open_backend("auto")) is ZfsCommands  # fake zfs on PATH
    monkeypatch.setitem(sys.modules, "libzfs_core", fake_lzc_module())
    assert type(factory.open_backend("auto")) is LzcZfs
    monkeypatch.setitem(sys.modules, "libzfs_core", None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ZfsUnavailable):
        factory.open_backend("auto")


def test_factory_imports_nothing_heavy():
    import subprocess

    code = (
        "import sys; import bootenv.zfs.factory; "
        "print(sorted(m for m in sys.modules if m.startswith(('bootenv.zfs.', 'libzfs_core', 'subprocess'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["bootenv.zfs.base", "bootenv.zfs.factory"]
