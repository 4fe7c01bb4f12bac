"""The real python-apt planner against a fake apt root: a temp dir with
etc/apt, a dpkg status file and lists fetched by a real `apt-get update`
from a file: repository of .debs built by tests/debs.py. python-apt's
process-global config is checked to be restored after every test."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bootenv.apt.model import (
    AptLocked,
    AptRequest,
    BrokenPackages,
    Change,
    HeldPackages,
    UnknownPackage,
    UpdateFailed,
)
from bootenv.apt.packages import AptPackages
from tests.debs import Deb, FakeAptRoot, build_repo

import apt_pkg  # noqa: E402  (python3-apt; `make deps` installs it: a missing one fails, never skips)

HELLO1 = Deb("hello", "1.0", files={"usr/share/hello/v": "1" * 5000})
HELLO2 = Deb("hello", "2.0", files={"usr/share/hello/v": "2" * 9000}, installed_kib=10)
PINNED1 = Deb("pinned", "1.0")
OLDLIB = Deb("oldlib", "1.0")
REPO = [
    HELLO1,
    HELLO2,
    Deb("lib-x", "1.0", installed_kib=300),
    Deb("tool", "1.0", depends="lib-x", installed_kib=200),
    Deb("needs-missing", "1.0", depends="no-such-lib"),
    Deb("linux-image-9.9-test", "1.0"),
    Deb("mta-a", "1.0", provides="mail-transport-agent"),
    Deb("editor-a", "1.0", provides="editor"),
    Deb("editor-b", "1.0", provides="editor"),
    PINNED1,
    Deb("pinned", "2.0"),
    Deb("uses-pinned", "1.0", depends="pinned (>= 2.0)"),
]


@pytest.fixture(autouse=True)
def apt_config_restored():
    """python-apt's config is global: every test must leave it as found
    (apt may add its own lazily computed defaults, never change a value)."""
    before = set(apt_pkg.config.dump().splitlines())
    yield
    after = set(apt_pkg.config.dump().splitlines())
    changed = before - after
    if changed:
        apt_pkg.init_config()
        apt_pkg.init_system()
    assert not changed, f"apt_pkg.config not restored: {sorted(changed)[:5]}"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_repo(tmp_path_factory.mktemp("repo"), REPO)


def make_root(tmp_path, repo, installed=(HELLO1, PINNED1, OLDLIB), held=()):
    root = FakeAptRoot.create(tmp_path / "root", repo, installed=installed, held=held)
    packages = AptPackages(root=str(root.path), config=root.config, apt_config=str(root.apt_config), echo=lambda line: None)
    packages.update()
    return root, packages


@pytest.fixture
def packages(tmp_path, repo):
    return make_root(tmp_path, repo)[1]


def test_update_fetched_the_lists(tmp_path, repo):
    root, _ = make_root(tmp_path, repo)
    assert any(p.name.endswith("Packages") for p in (root.path / "var/lib/apt/lists").iterdir())


def test_update_failure_is_a_clear_error(tmp_path):
    root = FakeAptRoot.create(tmp_path / "root", tmp_path / "no-such-repo")
    packages = AptPackages(apt_config=str(root.apt_config), echo=lambda line: None)
    with pytest.raises(UpdateFailed, match=r"apt-get update failed .*No network to the mirror\? .*--no-update"):
        packages.update()


def test_dist_upgrade_plans_the_new_version(packages):
    plan = packages.plan(AptRequest("dist-upgrade"))
    assert plan.changes == (Change("hello", "upgrade", "1.0", "2.0"), Change("pinned", "upgrade", "1.0", "2.0"))
    assert plan.write_bytes == 10 * 1024 + 1024
    assert not plan.reboot_needed and plan.kept_back == ()
    assert "hello (1.0 => 2.0)" in "\n".join(plan.describe())


def test_install_pulls_dependencies_and_sizes(packages):
    plan = packages.plan(AptRequest("install", ("tool",)))
    assert [(c.name, c.action) for c in plan.changes] == [("lib-x", "install"), ("tool", "install")]
    assert plan.write_bytes == 500 * 1024
    assert plan.space_bytes == 500 * 1024
    assert plan.download_bytes == 0  # file: repositories are read in place
    assert plan.needed_bytes == 500 * 1024


def test_install_already_newest_is_a_note(packages):
    plan = packages.plan(AptRequest("install", ("oldlib",)))
    assert plan.empty and plan.notes == ("oldlib is already the newest version (1.0).",)


def test_remove_and_purge(packages):
    plan = packages.plan(AptRequest("remove", ("oldlib",)))
    assert plan.changes == (Change("oldlib", "remove", "1.0", None),)
    plan = packages.plan(AptRequest("purge", ("oldlib",)))
    assert plan.changes == (Change("oldlib", "purge", "1.0", None),)
    assert "oldlib*" in "\n".join(plan.describe())
    plan = packages.plan(AptRequest("remove", ("tool",)))
    assert plan.empty and "not installed" in plan.notes[0]


def test_unknown_package(packages):
    with pytest.raises(UnknownPackage, match="unable to locate package nosuch"):
        packages.plan(AptRequest("install", ("nosuch",)))


def test_virtual_packages(packages):
    plan = packages.plan(AptRequest("install", ("mail-transport-agent",)))
    assert [c.name for c in plan.changes] == ["mta-a"]
    with pytest.raises(UnknownPackage, match="editor is a virtual package provided by editor-a, editor-b"):
        packages.plan(AptRequest("install", ("editor",)))


def test_unsatisfiable_dependencies(packages):
    with pytest.raises(BrokenPackages, match="needs-missing"):
        packages.plan(AptRequest("install", ("needs-missing",)))


def test_reboot_needed_for_a_kernel(packages):
    plan = packages.plan(AptRequest("install", ("linux-image-9.9-test",)))
    assert plan.reboot_reasons == ("linux-image-9.9-test changes",)


def test_reboot_required_file_in_the_root(tmp_path, repo):
    root, packages = make_root(tmp_path, repo)
    (root.path / "var/run").mkdir(parents=True)
    (root.path / "var/run/reboot-required").write_text("")
    plan = packages.plan(AptRequest("install", ("tool",)))
    assert plan.reboot_needed and "reboot is already pending" in plan.reboot_reasons[0]


def test_held_package_requested(tmp_path, repo):
    _, packages = make_root(tmp_path, repo, held=("pinned",))
    with pytest.raises(HeldPackages, match="pinned is held: run 'apt-mark unhold pinned' first"):
        packages.plan(AptRequest("install", ("pinned",)))


def test_held_package_is_kept_back_by_upgrades(tmp_path, repo):
    _, packages = make_root(tmp_path, repo, held=("pinned",))
    plan = packages.plan(AptRequest("dist-upgrade"))
    assert [c.name for c in plan.changes] == ["hello"]
    assert plan.kept_back == ("pinned",)
    assert "kept back" in "\n".join(plan.describe())


def test_dependency_on_a_held_package(tmp_path, repo):
    _, packages = make_root(tmp_path, repo, held=("pinned",))
    with pytest.raises((HeldPackages, BrokenPackages), match="pinned"):
        packages.plan(AptRequest("install", ("uses-pinned",)))


@pytest.mark.parametrize("lock", ["var/lib/dpkg/lock-frontend", "var/lib/dpkg/lock", "var/cache/apt/archives/lock"])
def test_apt_lock_held_by_another_process(tmp_path, repo, lock):
    root, packages = make_root(tmp_path, repo)
    path = root.path / lock
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AptLocked, match=rf"{path} is held by process {holder.pid} \(python"):
            packages.plan(AptRequest("dist-upgrade"))
    finally:
        holder.kill()
        holder.wait()
    assert packages.plan(AptRequest("dist-upgrade")).changes  # free again


def test_config_is_restored_even_when_planning_fails(packages):
    keys = ("Dir", "Dir::State::status", "Dir::Cache::pkgcache", "Dir::Etc::sourcelist")
    before = [(apt_pkg.config.exists(k), apt_pkg.config.find(k)) for k in keys]
    with pytest.raises(UnknownPackage):
        packages.plan(AptRequest("install", ("nosuch",)))
    assert [(apt_pkg.config.exists(k), apt_pkg.config.find(k)) for k in keys] == before


def test_run_argv(packages):
    req = AptRequest("full-upgrade")
    assert packages.argv(req) == ["apt-get", "-y", "-o", "DPkg::Lock::Timeout=0", "dist-upgrade"]
    assert packages.argv(AptRequest("purge", ("a", "b")), "/run/bootenv/x") == [
        "chroot", "/run/bootenv/x", "apt-get", "-y", "-o", "DPkg::Lock::Timeout=0", "purge", "a", "b",
    ]


def test_run_marks_the_environment_for_the_hook(tmp_path):
    from ..recording_runner import RecordingRunner

    runner = RecordingRunner(live_status=100)
    packages = AptPackages(runner=runner)
    assert packages.run(AptRequest("install", ("vim",))) == 100
    assert runner.live_env == [{"BOOTENV_APT": "1"}]
