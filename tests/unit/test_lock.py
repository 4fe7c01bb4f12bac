"""Only one bootenv mutates at a time, and the second says who is in the way."""

import multiprocessing
import os

import pytest

from bootenv.errors import EXIT_BUSY, LockHeld
from bootenv.lock import exclusive


def _hold(path, ready, release):
    with exclusive(path, command="bootenv destroy x"):
        ready.set()
        release.wait(10)


def test_second_holder_is_refused_and_told_who_holds_it(tmp_path):
    path = str(tmp_path / "bootenv.lock")
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockHeld, match=rf"pid {holder.pid}: bootenv destroy x") as err:
            with exclusive(path):
                pass
        assert err.value.exit_code == EXIT_BUSY
    finally:
        release.set()
        holder.join(10)
    with exclusive(path):  # free again once the holder is gone
        assert f"pid {os.getpid()}" in open(path).read()


def test_lock_is_released_after_an_error(tmp_path):
    path = str(tmp_path / "l")
    with pytest.raises(RuntimeError):
        with exclusive(path):
            raise RuntimeError("boom")
    with exclusive(path):
        pass
