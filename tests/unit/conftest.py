"""A root-on-ZFS system in the fake: rpool/ROOT/debian mounted at / and
booted by bootfs, rpool/home shared data outside the BE root."""

from __future__ import annotations

import pytest

from tests.clirunner import cli_runner  # noqa: F401  (re-exported: the unit tests import it from here)

from bootenv.boot.recording import RecordingBootloader
from bootenv.engine import Engine
from bootenv.zfs.fake import FakeZfs
from bootenv.zfs.fake.build import root_on_zfs


class Clock:
    """An injected clock: starts 2026-11-22 04:00:00 UTC, moves when told."""

    def __init__(self, now: float = 1795406400.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 60) -> None:
        self.now += seconds


def build_system(zfs: FakeZfs, *, deep: bool = False, data_mib: int = 64) -> None:
    """Given an empty fake, make a typical root-on-ZFS Debian pool:
    rpool/ROOT/debian running (with /var as a child when `deep`), rpool/home
    shared."""
    root_on_zfs(zfs, deep=["var"] if deep else [], shared=["home"], data_mib=data_mib)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def zfs(clock) -> FakeZfs:
    fake = FakeZfs(clock=clock, strict=True)
    build_system(fake)
    return fake


@pytest.fixture
def boot() -> RecordingBootloader:
    return RecordingBootloader()


@pytest.fixture
def engine(zfs, boot, clock, tmp_path) -> Engine:
    return Engine(zfs, boot, clock=clock, mount_base=str(tmp_path / "mnt"))


def datasets(zfs: FakeZfs, root: str = "rpool") -> list[str]:
    """Every dataset name under `root`, snapshots included, sorted."""
    return sorted(d.name for d in zfs.list(root, snapshots=True))


@pytest.fixture
def state(tmp_path):
    """A fake root-on-ZFS pool kept in a JSON file, for the CLI to load."""
    fake = FakeZfs(clock=Clock())
    build_system(fake)
    path = tmp_path / "pool.json"
    fake.save(path)
    return path


def cli_env(state, tmp_path, *, health: bool = False) -> dict:
    """The environment a CLI run gets: the fake pool kept at `state`, a
    private lock, a recording bootloader (its log: tmp_path/boot.log),
    BE root and running BE found as on a real system; `health`: an empty
    health-check dir tmp_path/health.d."""
    env = {
        "BOOTENV_ZFS": f"fake:{state}",
        "BOOTENV_LOCK": str(tmp_path / "bootenv.lock"),
        "BOOTENV_BOOTLOADER": f"recording:{tmp_path / 'boot.log'}",
        "BOOTENV_BE_ROOT": None,
        "BOOTENV_RUNNING": None,
        "BOOTENV_BOOT_ROOT": None,
    }
    if health:
        (tmp_path / "health.d").mkdir(exist_ok=True)
        env["BOOTENV_HEALTH_DIR"] = str(tmp_path / "health.d")
    return env


@pytest.fixture
def env(state, tmp_path):
    return cli_env(state, tmp_path)


@pytest.fixture
def run(env):
    """Run the CLI in process with `env`: run("create", "x") -> Result."""
    from bootenv import cli

    runner = cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(cli.app, list(args), env=env, input=input)

    return invoke


def pool(state) -> list[str]:
    """Every dataset in the fake pool kept at `state`, snapshots included."""
    return sorted(d.name for d in FakeZfs.load(state).list("rpool", snapshots=True))
