"""load_lzc: a libzfs_core that cannot start (no /dev/zfs, no .so) is "no
ZFS here" (ZfsUnavailable); any other error at its import is a bug and
is raised as it is. A stand-in package on sys.path plays libzfs_core."""

from __future__ import annotations

import sys

import pytest

from bootenv.zfs.base import ZfsUnavailable
from bootenv.zfs.lzc import load_lzc

EXCEPTIONS = "class ZFSError(Exception):\n    pass\n\nclass ZFSInitializationFailed(ZFSError):\n    pass\n"


def _package(tmp_path, monkeypatch, init: str) -> None:
    pkg = tmp_path / "libzfs_core"
    pkg.mkdir()
    (pkg / "exceptions.py").write_text(EXCEPTIONS)
    (pkg / "__init__.py").write_text(init)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("libzfs_core", "libzfs_core.exceptions"):
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.mark.parametrize("init", [
    "from .exceptions import ZFSInitializationFailed\nraise ZFSInitializationFailed('no /dev/zfs')\n",
    "raise OSError(2, 'cannot load library libzfs_core.so.3')\n",
])
def test_a_libzfs_core_that_cannot_start_is_no_zfs(tmp_path, monkeypatch, init):
    _package(tmp_path, monkeypatch, init)
    with pytest.raises(ZfsUnavailable, match="libzfs_core cannot start"):
        load_lzc()


def test_another_error_at_import_is_not_hidden(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, "raise RuntimeError('a bug')\n")
    with pytest.raises(RuntimeError, match="a bug"):
        load_lzc()
