"""The contract suite: one set of ZFS behaviours, every backend.

`zenv` is parametrised over the kinds in BOOTENV_TEST_BACKENDS (see
backends.py for the BackendEnv each test gets)."""

from __future__ import annotations

import pytest

from . import backends


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "zenv" in metafunc.fixturenames:
        metafunc.parametrize("zenv", backends.requested_kinds(), indirect=True)


@pytest.fixture
def zenv(request: pytest.FixtureRequest, tmp_path) -> backends.BackendEnv:
    env = backends.factory(request.param)(tmp_path)
    try:
        yield env
    finally:
        env.close()

