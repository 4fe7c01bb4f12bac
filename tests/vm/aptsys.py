"""Shared by the real-apt guest tests (tests/vm/guest/test_apt_real.py on
a small Debian the tests copy from the runner, tests/vm/guest_rootdisk/
test_apt_rootdisk.py on the cached root-on-ZFS disk): the test
repository, a "running" BE mounted where bootenv plans, and readers of
real state (dpkg status, zfs, mountinfo). Imports without pyzfs or
python-apt (the host lists the guest tests)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.clirunner import cli_runner

from bootenv import cli
from bootenv.cli import apt as cli_apt
from bootenv.apt.packages import AptPackages
from tests.debs import Deb, build_repo

TEMPLATE_NAME = "apt-template"
REPO = Path("/run/bootenv-apt-test/repo")
SOURCE = f"deb [trusted=yes] file:{REPO} ./\n"
_counter = itertools.count(1)

HELLO1 = Deb("hello", "1.0", files={"/usr/share/hello/version": "1.0\n"})
HELLO2 = Deb("hello", "2.0", files={"/usr/share/hello/version": "2.0\n"})
BROKEN = Deb("broken", "1.0", files={"/usr/share/broken/file": "x\n"},
             postinst="echo 'broken: postinst fails on purpose' >&2\nexit 1")
EXTRA = Deb("extra", "1.0", depends="hello (>= 2.0)", files={"/usr/share/extra/file": "extra\n"})
HUGE = Deb("huge", "1.0", files={"/usr/share/huge/file": "h\n"}, installed_kib=64 * 1024 * 1024)  # 64 GiB
# Its postinst says it started (in /run: the sandbox binds it), then takes
# its time: the moment to press Ctrl-C.
SLOW_STARTED = "/run/bootenv-apt-test/slow-postinst-started"
SLOW = Deb("slow", "1.0", files={"/usr/share/slow/file": "slow\n"},
           postinst=f"touch {SLOW_STARTED}\nsleep 300")


def sh(*argv: str, input: str | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def zfs_get(name: str, prop: str) -> str:
    return sh("zfs", "get", "-H", "-p", "-o", "value", prop, name).strip()


def tree(base: str) -> list[str]:
    return sorted(sh("zfs", "list", "-H", "-o", "name", "-t", "filesystem,snapshot", "-r", base).split())


def mounts() -> list[str]:
    """Every mount point of this process (field 5 of mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


def dpkg_version(root: str, package: str) -> str | None:
    """The installed version of `package` in the dpkg status under `root`."""
    text = Path(root, "var/lib/dpkg/status").read_text()
    for stanza in text.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            status = re.search(r"^Status: (.*)$", stanza, re.M).group(1)
            if status.endswith(" installed"):
                return re.search(r"^Version: (.*)$", stanza, re.M).group(1)
            return f"<{status}>"
    return None


# ------------------------------------------------------------------ the Debian template


def _dep_names(field: str, providers: dict[str, str]) -> list[str]:
    """The installed packages that satisfy a Depends field: per group the
    first alternative installed, by name or through Provides."""
    names = []
    for group in filter(None, (g.strip() for g in field.split(","))):
        alternatives = [a.strip().split()[0].split(":")[0] for a in group.split("|")]
        chosen = next((providers[a] for a in alternatives if a in providers), None)
        if chosen:
            names.append(chosen)
    return names


def essential_closure() -> set[str]:
    """The runner's Essential packages, apt and dpkg, and everything they
    depend on (first installed alternative)."""
    rows = sh("dpkg-query", "-W", "-f",
              "${Package}\t${Essential}\t${db:Status-Abbrev}\t${Pre-Depends}\t${Depends}\t${Provides}\n")
    deps: dict[str, str] = {}
    providers: dict[str, str] = {}
    start = {"apt", "dpkg"}
    for row in rows.splitlines():
        name, essential, status, pre, dep, provides = (row.split("\t") + [""] * 6)[:6]
        if not status.startswith("ii"):
            continue
        deps[name] = f"{pre},{dep}"
        providers[name] = name
        for virtual in filter(None, (v.strip().split()[0] for v in provides.split(",") if v.strip())):
            providers.setdefault(virtual, name)
        if essential == "yes":
            start.add(name)
    todo, seen = list(start), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in deps:
            continue
        seen.add(name)
        todo.extend(_dep_names(deps[name], providers))
    return seen


def populate(mnt: str) -> None:
    """Copy the closure's files, /etc, and the matching dpkg database into mnt."""
    packages = sorted(essential_closure())
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if os.path.islink("/" + link):
            os.makedirs(os.path.join(mnt, target), exist_ok=True)
            os.symlink(target, os.path.join(mnt, link))
    listed = sh("dpkg-query", "-L", *packages)
    paths = sorted({p for p in listed.splitlines() if p.startswith("/") and os.path.lexists(p)})
    paths = [p.lstrip("/") for p in paths if p not in ("/bin", "/sbin", "/lib", "/lib64")]
    with tempfile.NamedTemporaryFile("w", suffix=".list") as lst:
        lst.write("\n".join(paths + ["etc"]) + "\n")
        lst.flush()
        # etc whole (recursive), the package files one by one
        subprocess.run(
            f"tar -C / -cf - etc | tar -C {mnt} -xf - && "
            f"tar -C / --no-recursion -cf - -T {lst.name} | tar -C {mnt} --keep-directory-symlink -xf -",
            shell=True, check=True,
        )
    admin = Path(mnt, "var/lib/dpkg")
    for rel in ("info", "updates", "triggers", "alternatives"):
        (admin / rel).mkdir(parents=True, exist_ok=True)
    wanted = set(packages)
    stanzas = Path("/var/lib/dpkg/status").read_text().split("\n\n")
    kept = [s for s in stanzas if (m := re.search(r"^Package: (\S+)$", s, re.M)) and m.group(1) in wanted]
    (admin / "status").write_text("\n\n".join(s.strip("\n") for s in kept) + "\n\n")
    for entry in os.scandir("/var/lib/dpkg/info"):
        if entry.name.rsplit(".", 1)[0].split(":")[0] in wanted:  # PKG[:ARCH].EXT
            sh("cp", "-a", entry.path, str(admin / "info" / entry.name))
    for rel in ("diversions", "statoverride", "arch"):
        if os.path.exists(f"/var/lib/dpkg/{rel}"):
            sh("cp", "-a", f"/var/lib/dpkg/{rel}", str(admin / rel))
    for rel in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt",
                "var/tmp", "root", "run", "proc", "sys", "dev", "usr/sbin"):
        Path(mnt, rel).mkdir(parents=True, exist_ok=True)
    tmp = Path(mnt, "tmp")
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)
    only_test_sources(mnt)
    Path(mnt, "usr/sbin/policy-rc.d").unlink(missing_ok=True)  # the sandbox installs its own


def only_test_sources(mnt: str) -> None:
    """Move the BE's own apt sources aside: the test repository is its only source."""
    apt = Path(mnt, "etc/apt")
    if (apt / "sources.list").exists():
        (apt / "sources.list").rename(apt / "sources.list.bootenv-test-aside")
    for entry in (apt / "sources.list.d").glob("*"):
        if not entry.name.endswith(".bootenv-test-aside"):
            entry.rename(entry.with_name(entry.name + ".bootenv-test-aside"))
    (apt / "sources.list").write_text(SOURCE)


def build_test_repo(debs) -> Path:
    """The flat file: repository under /run (seen by the sandbox through its /run bind)."""
    if REPO.exists():
        sh("rm", "-rf", str(REPO))
    return build_repo(REPO, debs)


_SPAWN_MNT = "BOOTENV_TEST_RUNNING_MNT"


def packages_at(mnt: str) -> AptPackages:
    """apt on "the running system": python-apt and apt-get update pointed
    at the BE mounted at `mnt`."""
    conf = Path(tempfile.mkdtemp(prefix="bootenv-apt-"), "apt.conf")
    settings = {"Dir": mnt + "/", "Dir::State::status": f"{mnt}/var/lib/dpkg/status", "APT::Sandbox::User": "root"}
    conf.write_text("".join(f'{k} "{v}";\n' for k, v in settings.items()))
    return AptPackages(root=mnt, config={"APT::Sandbox::User": "root"}, apt_config=str(conf))


def spawned_cli() -> None:
    """The CLI in a process of AptSystem.spawn's: apt planned on the BE
    mounted at $BOOTENV_TEST_RUNNING_MNT."""
    mnt = os.environ[_SPAWN_MNT]
    cli_apt.open_packages = lambda: packages_at(mnt)
    cli.main(sys.argv[1:])


def umount_where_we_started(path: str) -> None:
    """bootenv run in process moves this process into a mount namespace of
    its own (a slave of the one it started in, zfs/mountns.py) at its first
    sandbox: a mount this process made before that is a copy there, and
    unmounting the copy leaves the original standing in the namespace we
    started in (the runner's init's), holding the dataset busy. Unmount it
    there too (no-op when the namespaces are the same or it is not there)."""
    if os.readlink("/proc/self/ns/mnt") != os.readlink("/proc/1/ns/mnt"):
        subprocess.run(["nsenter", "-t", "1", "-m", "umount", path], capture_output=True)


class AptSystem:
    """A BE root whose BE `running` "runs": mounted at self.mnt (the
    runner's / is not root-on-ZFS); bootenv plans and updates there
    (cli_apt.open_packages patched), sandboxes clone it. `base` is what
    close() destroys (None: nothing)."""

    def __init__(self, root: str, monkeypatch, *, running: str = "debian", base: str | None = None) -> None:
        self.root = root
        self.pool = root.split("/")[0]
        self.base = base
        self.running = running
        self.mnt = f"/mnt/apt{os.getpid()}-{next(_counter)}-running"
        self.mount_running()
        self.lock = tempfile.mktemp(prefix="bootenv-lock-")
        self._looks: list[str] = []
        monkeypatch.setattr(cli_apt, "open_packages", self.packages)

    def mount_running(self) -> None:
        os.makedirs(self.mnt, exist_ok=True)
        sh("mount", "-t", "zfs", "-o", "zfsutil", f"{self.root}/{self.running}", self.mnt)

    def reboot_into(self, name: str) -> None:
        """What a reboot does to this test: the other BE is the running one."""
        sh("umount", self.mnt)
        umount_where_we_started(self.mnt)
        self.running = name
        self.mount_running()

    def packages(self) -> AptPackages:
        return packages_at(self.mnt)

    def env(self) -> dict[str, str]:
        return {
            "BOOTENV_ZFS": "lzc",
            "BOOTENV_BE_ROOT": self.root,
            "BOOTENV_RUNNING": f"{self.root}/{self.running}",
            "BOOTENV_LOCK": self.lock,
            "BOOTENV_BOOTLOADER": "bootfs",
        }

    def bootenv(self, *args: str):
        return cli_runner().invoke(cli.app, list(args), env=self.env())

    def spawn(self, *args: str) -> subprocess.Popen:
        """bootenv ARGS as a process of its own, in a session of its own
        (so a test can Ctrl-C its whole process group, as a terminal does),
        planning on this system like `bootenv()`. Output: pipes, text."""
        env = {**os.environ, **self.env(), _SPAWN_MNT: self.mnt}
        return subprocess.Popen(
            [sys.executable, "-c", "from tests.vm.aptsys import spawned_cli; spawned_cli()", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

    def ok(self, *args: str):
        result = self.bootenv(*args)
        assert result.exit_code == 0, f"bootenv {' '.join(args)} -> {result.exit_code}\n{result.output}\n{result.exception!r}"
        return result

    def new_bes(self) -> list[str]:
        return [ds.rsplit("/", 1)[1] for ds in tree(self.root) if "@" not in ds and ds.count("/") == self.root.count("/") + 1
                and not ds.endswith("/" + self.running)]

    def look(self, name: str):
        """Mount BE `name` read-only somewhere of its own; return the path."""
        path = tempfile.mkdtemp(prefix=f"look-{name}-")
        sh("mount", "-t", "zfs", "-o", "zfsutil,ro", f"{self.root}/{name}", path)
        self._looks.append(path)
        return path

    def unlook(self) -> None:
        """Unmount what look() mounted (a BE mounted twice cannot be the
        running one: reboot_into mounts it again)."""
        for path in self._looks:
            subprocess.run(["umount", path], capture_output=True)
            umount_where_we_started(path)
        self._looks.clear()

    def close(self) -> None:
        for path in [*getattr(self, "_looks", []), self.mnt]:
            subprocess.run(["umount", path], capture_output=True)
            umount_where_we_started(path)
        if self.base:
            subprocess.run(["zfs", "destroy", "-R", "-f", self.base], capture_output=True)




def copy_of(template: str, monkeypatch) -> AptSystem:
    """POOL/aptN/ROOT/debian, a full copy (send | recv) of `template`,
    the pool's bootfs, running."""
    pool = template.split("/")[0]
    base = f"{pool}/apt{os.getpid()}-{next(_counter)}"
    root = f"{base}/ROOT"
    sh("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", base)
    sh("zfs", "create", "-o", "canmount=off", root)
    be = f"{root}/debian"
    subprocess.run(f"zfs send {template} | zfs recv -u -o canmount=noauto -o mountpoint=/ {be}",
                   shell=True, check=True)
    sh("zfs", "destroy", f"{be}@base")
    sh("zpool", "set", f"bootfs={be}", pool)
    return AptSystem(root, monkeypatch, base=base)


def snapshot_of(root: str) -> dict[str, object]:
    """What a failed sandbox must not change on the running BE."""
    return {
        "status": Path(root, "var/lib/dpkg/status").read_text(),
        "info": sorted(os.listdir(Path(root, "var/lib/dpkg/info"))),
        "usr-share": sorted(os.listdir(Path(root, "usr/share"))),
        "policy": os.path.lexists(Path(root, "usr/sbin/policy-rc.d")),
    }
