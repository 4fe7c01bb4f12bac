"""The Debian package for real (runs INSIDE the VM guest): what the guest
runs is the installed .deb, and its lifecycle -- install, remove, purge,
upgrade over an older version -- on a pool with boot environments.

tests/vm/guest-run.sh installed the run's .deb (`make deb` on the host)
with `apt-get install ./bootenv_*.deb` before pytest started: apt pulled
python3-typer, -click and -tabulate from the image's only apt source, the
local file: repository /opt/bootenv-vm-repo. The lifecycle test removes,
purges and reinstalls bootenv, and leaves the run's .deb installed again
(fresh conffiles) for the tests after it.

Imports on the host without pyzfs (the host lists the guest tests): only
subprocesses and the standard library here.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
DEB_DIR = "/run/bootenv-vm/debs"  # guest-run.sh's local copy of the run's .deb
REPO = "/opt/bootenv-vm-repo"  # tests/vm/image/setup.sh
DIST = "/usr/lib/python3/dist-packages"
CONFFILES = ("/etc/bootenv/bootenv.conf", "/etc/apt/apt.conf.d/80bootenv", "/etc/grub.d/42_bootenv")
CONF = CONFFILES[0]
LOCAL_EDIT = "\n# vmtest: a local edit\nkeep_auto = 7\n"


def run(*argv: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    print(f"$ {' '.join(argv)}\n{p.stdout}{p.stderr}[rc {p.returncode}]")
    if check:
        assert p.returncode == 0, f"{' '.join(argv)} -> {p.returncode}\n{p.stdout}{p.stderr}"
    return p


def run_deb() -> str:
    debs = glob.glob(f"{DEB_DIR}/bootenv_*_all.deb")
    assert len(debs) == 1, f"guest-run.sh left no single .deb in {DEB_DIR}: {debs}"
    return debs[0]


def status() -> str:
    """dpkg's status of bootenv: 'install ok installed 0.1.0', 'deinstall ok config-files 0.1.0', ...
    ('' when dpkg knows nothing of it)."""
    p = run("dpkg-query", "-W", "-f", "${Status} ${Version}", "bootenv", check=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def test_what_runs_is_the_installed_package():
    import bootenv
    import typer

    deb = run_deb()
    assert bootenv.__file__.startswith(f"{DIST}/bootenv/"), bootenv.__file__
    assert typer.__file__.startswith(f"{DIST}/typer/"), typer.__file__  # Debian's python3-typer
    assert not os.path.exists(os.path.join(os.environ["TREE"], "bootenv")), "the tree's bootenv/ is visible"
    assert shutil.which("bootenv") == "/usr/bin/bootenv"
    assert run("dpkg-query", "-S", bootenv.__file__).stdout.startswith("bootenv: ")
    version = run("dpkg-deb", "-f", deb, "Version").stdout.strip()
    assert status() == f"install ok installed {version}"
    assert version.split("-")[0].split("+")[0] in run("bootenv", "--version").stdout
    # apt took the dependencies from the guest's own source, in this run.
    for dep in ("python3-typer", "python3-click", "python3-tabulate"):
        policy = run("apt-cache", "policy", dep).stdout
        installed = next(l.split()[1] for l in policy.splitlines() if l.strip().startswith("Installed:"))
        assert installed != "(none)", policy
        assert f"file:{REPO}" in policy, policy
    # guest-run.sh's is the first apt run that installed bootenv (the
    # image's build never did): the dependencies came with it.
    installs = [l for l in open("/var/log/apt/history.log").read().splitlines() if l.startswith("Install: ")]
    # (history.log names an Architecture: all package with the native arch)
    first = next((l for l in installs if re.search(r"[ ,]bootenv:\w+ \(", l)), None)
    assert first and all(re.search(rf"[ ,]{d}:\w+ \(", first) for d in ("python3-typer", "python3-click", "python3-tabulate")), installs


class Pool:
    """A root-on-ZFS layout on the test pool (the runner's / is ext4):
    BASE/ROOT/debian "runs" (BOOTENV_RUNNING), the pool's bootfs; bootenv
    (the installed command) drives it with the bootfs bootloader."""

    def __init__(self) -> None:
        self.base = f"{POOL}/pkg{os.getpid()}"
        self.root = f"{self.base}/ROOT"
        run("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", self.base)
        run("zfs", "create", "-o", "canmount=off", self.root)
        run("zfs", "create", "-o", "canmount=noauto", "-o", "mountpoint=/", f"{self.root}/debian")
        run("zpool", "set", f"bootfs={self.root}/debian", POOL)
        self.env = dict(os.environ, BOOTENV_BE_ROOT=self.root, BOOTENV_RUNNING=f"{self.root}/debian",
                        BOOTENV_BOOTLOADER="bootfs", BOOTENV_LOCK=tempfile.mktemp(prefix="bootenv-lock-"),
                        DEBIAN_FRONTEND="noninteractive")

    def bootenv(self, *args: str) -> str:
        return run("bootenv", *args, env=self.env).stdout

    def apt(self, *args: str) -> str:
        """apt-get as a user runs it (with this pool's environment, so the
        package's apt hook sees the "running" BE)."""
        return run("apt-get", "-y", "-q", *args, env=self.env).stdout

    def names(self) -> list[str]:
        return sorted(run("zfs", "list", "-H", "-o", "name", "-t", "all", "-r", self.root).stdout.split())

    def props(self) -> list[str]:
        """The org.bootenv properties of the BEs and their snapshots (not
        the BE root's own counters, which every new BE moves on)."""
        out = run("zfs", "get", "-H", "-o", "name,property,value", "-s", "local", "all", "-r", self.root).stdout
        return sorted(l for l in out.splitlines() if "\torg.bootenv:" in l and l.startswith(self.root + "/"))

    def bootfs(self) -> str:
        return run("zpool", "get", "-H", "-o", "value", "bootfs", POOL).stdout.strip()

    def destroy(self) -> None:
        subprocess.run(["zfs", "destroy", "-R", "-f", self.base], capture_output=True)


def newer_deb(deb: str, version: str, workdir: str, conf_line: str | None = None) -> str:
    """A copy of `deb` with Version `version` (dpkg-deb repack), its
    packaged bootenv.conf changed by `conf_line` when given."""
    tree = os.path.join(workdir, version)
    run("dpkg-deb", "-R", deb, tree)
    control = os.path.join(tree, "DEBIAN/control")
    text = open(control).read()
    old = next(l for l in text.splitlines() if l.startswith("Version: "))
    open(control, "w").write(text.replace(old, f"Version: {version}"))
    if conf_line:
        with open(os.path.join(tree, CONF.lstrip("/")), "a") as f:
            f.write(conf_line)
        run("sh", "-c", f"cd {tree} && find . -type f ! -path './DEBIAN/*' -printf '%P\\0' | sort -z "
                        "| xargs -0 md5sum >DEBIAN/md5sums")
    out = os.path.join(workdir, f"bootenv_{version}_all.deb")
    run("dpkg-deb", "-b", tree, out)
    return out


@pytest.fixture
def pool():
    p = Pool()
    yield p
    p.destroy()
    # The tests after this one get the run's package again, fresh conffiles.
    subprocess.run(["apt-get", "-y", "-q", "purge", "bootenv"], capture_output=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    run("apt-get", "-y", "-q", "install", run_deb(), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def test_package_lifecycle(pool, tmp_path):
    deb = run_deb()
    version = run("dpkg-deb", "-f", deb, "Version").stdout.strip()
    assert status() == f"install ok installed {version}"

    # -- installed (by apt, guest-run.sh): it works on a pool with BEs
    pool.bootenv("create", "one", "-t", "before remove")
    pool.bootenv("create", "two")
    pool.bootenv("activate", "two")
    listed = pool.bootenv("list")
    assert "one" in listed and "two" in listed and "before remove" in listed, listed
    assert pool.bootfs() == f"{pool.root}/two"
    names, props = pool.names(), pool.props()
    assert f"{pool.root}/one\torg.bootenv:title\tbefore remove" in props, props
    menu = run("sh", "/etc/grub.d/42_bootenv", env=pool.env, check=False)
    assert menu.returncode == 0 and "menuentry" in menu.stdout, menu.stdout + menu.stderr

    # -- apt remove: the program goes, the BEs, their properties, the bootfs
    # and the conffiles stay; 42_bootenv emits no entry without bootenv.
    # (The package's own apt hook still runs before dpkg removes it: one
    # more BE, a checkpoint of the running one.)
    pool.apt("remove", "bootenv")
    assert status() == f"deinstall ok config-files {version}"
    assert shutil.which("bootenv") is None and not os.path.exists(f"{DIST}/bootenv")
    assert not os.path.exists("/lib/systemd/system/bootenv-boot.service")
    assert set(names) <= set(pool.names()), (names, pool.names())
    assert set(props) <= set(pool.props()), (props, pool.props())
    names, props = pool.names(), pool.props()
    assert pool.bootfs() == f"{pool.root}/two"
    assert all(os.path.exists(f) for f in CONFFILES)
    menu = run("sh", "/etc/grub.d/42_bootenv", env=pool.env, check=False)
    assert menu.returncode == 0 and "menuentry" not in menu.stdout, menu.stdout + menu.stderr

    # -- apt purge: the conffiles go too; the BEs still stay
    pool.apt("purge", "bootenv")
    assert status() in ("", "unknown ok not-installed ")
    assert [f for f in CONFFILES if os.path.exists(f)] == []
    assert pool.names() == names and pool.props() == props and pool.bootfs() == f"{pool.root}/two"

    # -- install again, edit bootenv.conf, upgrade to newer versions
    pool.apt("install", deb)
    assert status() == f"install ok installed {version}"
    with open(CONF, "a") as f:
        f.write(LOCAL_EDIT)
    edited = open(CONF).read()
    assert "one" in pool.bootenv("list")  # the edited configuration parses
    before = set(pool.names())

    # (a) newer version, same packaged bootenv.conf, apt's defaults: no
    # prompt (stdin is /dev/null: a prompt would fail), the edit stays
    v1 = f"{version}+vmtest1"
    pool.apt("install", newer_deb(deb, v1, str(tmp_path)))
    assert status() == f"install ok installed {v1}"
    assert open(CONF).read() == edited
    assert not glob.glob(CONF + ".dpkg-*")
    # the old version's apt hook took its checkpoint of the "running" BE
    hooked = json.loads(pool.bootenv("list", "--json"))
    print("BEs after the upgrade:", [(b["name"], b["kind"]) for b in hooked])
    assert set(pool.names()) > before, "the apt hook took no checkpoint during the upgrade"

    # (b) newer version whose packaged bootenv.conf changed: dpkg would
    # ask; with --force-confold it keeps the edit and leaves the package's
    # new version beside it as .dpkg-dist
    v2 = f"{version}+vmtest2"
    pool.apt("install", "-o", "Dpkg::Options::=--force-confold",
             newer_deb(deb, v2, str(tmp_path), conf_line="# vmtest2: a new packaged line\n"))
    assert status() == f"install ok installed {v2}"
    assert open(CONF).read() == edited
    assert "# vmtest2: a new packaged line" in open(CONF + ".dpkg-dist").read()
    assert "two" in pool.bootenv("list")
