"""contrib/ansible/stage-be.yml run for real (runs INSIDE the VM guest):
Debian's ansible-core, over real ssh (an sshd on the guest's loopback), on
real OpenZFS, with the bootenv the .deb installed.

The build host is the controller (the suite's pool, BE root betest/ahN/ROOT,
a hand-made BE `web` as in test_transfer_real); two targets are two
file-backed pools on /run, each with a running BE `debian`, both reached as
root@127.0.0.1 (what tells them apart is the environment bootenv runs with,
an inventory variable). One guest boot cannot reboot, so the playbook runs
twice, as an admin's would run across a reboot: first without its `confirm`
part and with `bootenv_reboot=false` (send once, copy, receive, diff, arm
the trial on each target), then the test does what the boot does
(`bootenv boot-started`, as bootenv-boot.service): t1 comes up on web, t2
does not (its trial was not taken); then the `confirm` part: t1 is
confirmed and keeps web as its default, t2 fails the play with the reason
and keeps debian. The staged rollout's promise: a BE that did not come up
never becomes a machine's default.

Imports on the host without pyzfs (the host lists the guest tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.vm.guest.test_transfer_real import Machine, made_web, sh

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "contrib" / "ansible" / "stage-be.yml"
SSH_PORT = 2222


def measure(what: str, value) -> None:
    print(f"MEASURE {what}: {value}", flush=True)


@pytest.fixture
def sshd(tmp_path):
    """An sshd on 127.0.0.1:SSH_PORT taking root with a key made here;
    yield the key's path."""
    sh("ip", "link", "set", "lo", "up")
    os.makedirs("/run/sshd", exist_ok=True)
    sh("ssh-keygen", "-A")
    key = tmp_path / "id_ed25519"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    (tmp_path / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nStrictModes no\nUsePAM no\n"
        f"PidFile {tmp_path}/sshd.pid\nSubsystem sftp internal-sftp\n"
    )
    sh("/usr/sbin/sshd", "-f", str(config))
    try:
        yield key
    finally:
        pid = (tmp_path / "sshd.pid").read_text().strip() if (tmp_path / "sshd.pid").exists() else ""
        if pid:
            subprocess.run(["kill", pid], capture_output=True)


class Target:
    """A target machine: a pool of its own, BE root POOL/ROOT, running BE
    `debian` (the pool's bootfs)."""

    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.pool = f"beans{name}{os.getpid()}"
        self.image = Path(f"/run/{self.pool}.img")
        sh("truncate", "-s", "256M", str(self.image))
        sh("zpool", "create", "-O", "mountpoint=none", self.pool, str(self.image))
        self.be_root = f"{self.pool}/ROOT"
        sh("zfs", "create", "-o", "canmount=off", "-o", "mountpoint=none", self.be_root)
        sh("zfs", "create", "-o", "canmount=noauto", "-o", "mountpoint=/", f"{self.be_root}/debian")
        sh("zpool", "set", f"bootfs={self.be_root}/debian", self.pool)
        self.lock = str(tmp / f"{name}.lock")
        self.running = "debian"

    def env(self) -> dict[str, str]:
        return {
            "BOOTENV_ZFS": "lzc",
            "BOOTENV_BE_ROOT": self.be_root,
            "BOOTENV_BOOTLOADER": "bootfs",
            "BOOTENV_LOCK": self.lock,
            "BOOTENV_RUNNING": f"{self.be_root}/{self.running}",
        }

    def bootenv(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(["bootenv", *args], env={**os.environ, **self.env()}, capture_output=True, text=True)
        assert proc.returncode == 0, f"{self.name}: bootenv {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def status(self) -> dict:
        return json.loads(self.bootenv("status", "--json").stdout)

    def boot(self, into: str) -> None:
        """What a reboot that comes up on BE `into` does for bootenv: that
        BE runs, and bootenv-boot.service runs boot-started."""
        self.running = into
        self.bootenv("boot-started")

    def close(self) -> None:
        subprocess.run(["zpool", "destroy", "-f", self.pool], capture_output=True)
        self.image.unlink(missing_ok=True)


@pytest.fixture
def fleet(tmp_path):
    build = Machine(f"{POOL}/ah{os.getpid()}/ROOT", tmp_path, "build")
    sh("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", f"{POOL}/ah{os.getpid()}")
    sh("zfs", "create", "-o", "canmount=off", "-o", "mountpoint=none", build.be_root)
    targets = [Target("t1", tmp_path), Target("t2", tmp_path)]
    yield build, targets
    for t in targets:
        t.close()
    base = f"{POOL}/ah{os.getpid()}"
    sh("bash", "-c", f"zfs list -H -o name -t snapshot -r {base} | xargs -r -n1 zfs release bootenv-send 2>/dev/null; true")
    subprocess.run(["zfs", "destroy", "-r", "-f", base], capture_output=True)


def inventory(path: Path, build: Machine, targets: list[Target], key: Path) -> Path:
    """The inventory an admin would write (YAML is JSON): the controller
    and the targets, each with the environment its bootenv runs with."""
    build_env = {k: build.env[k] for k in ("BOOTENV_ZFS", "BOOTENV_BE_ROOT", "BOOTENV_BOOTLOADER", "BOOTENV_LOCK")}
    data = {
        "all": {
            "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
            "hosts": {"localhost": {"ansible_connection": "local", "bootenv_env": build_env}},
            "children": {"bootenv_targets": {"hosts": {
                t.name: {"ansible_host": "127.0.0.1", "ansible_port": SSH_PORT, "ansible_user": "root",
                         "ansible_ssh_private_key_file": str(key), "bootenv_env": t.env()}
                for t in targets
            }}},
        }
    }
    path.write_text(json.dumps(data, indent=1))
    return path


def playbook(inv: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PIPELINING": "True",
           "ANSIBLE_RETRY_FILES_ENABLED": "False"}
    argv = ["ansible-playbook", "-i", str(inv), str(PLAYBOOK), "-e", "bootenv_be=web", "-e", "bootenv_become=false",
            "-e", f"bootenv_stream_dir={tmp}", "-e", f"bootenv_target_stream_dir={tmp}/incoming", *args]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    measure(f"ansible-playbook {' '.join(args)} wall seconds", f"{time.monotonic() - t0:.1f}")
    print(proc.stdout[-6000:])
    print(proc.stderr[-2000:])
    return proc


def test_the_playbook_stages_a_be_and_only_a_machine_that_came_up_on_it_keeps_it(sshd, fleet, tmp_path):
    build, targets = fleet
    t1, t2 = targets
    made_web(build, str(tmp_path / "web"))
    (tmp_path / "incoming").mkdir()

    # -- send once, receive, diff, arm the trial on each target
    inv = inventory(tmp_path / "inventory.json", build, targets, sshd)
    staged = playbook(inv, tmp_path, "-e", "bootenv_reboot=false", "--skip-tags", "confirm")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    assert "bootenv send --resume" not in staged.stdout and "--from send-" in staged.stdout  # send's hint, shown
    assert "  hello 1.0-1" in staged.stdout  # the package diff against the running BE, shown
    for t in targets:
        assert sh("zfs", "get", "-H", "-o", "value", "canmount,mounted", f"{t.be_root}/web").split() == ["noauto", "no"]
        st = t.status()
        assert (st["running"], st["next_boot"], st["default"]) == ("debian", "web", "debian"), st
        assert st["trial"]["be"] == "web" and st["trial"]["state"] == "armed", st
    assert list((tmp_path / "incoming").iterdir()) == []  # the stream file went

    # -- the reboots: t1 comes up on web, t2 on its default (trial not taken)
    t1.boot("web")
    t2.boot("debian")

    # -- after the boot: t1 confirmed, t2 fails the play and keeps debian
    inv = inventory(tmp_path / "inventory.json", build, targets, sshd)
    after = playbook(inv, tmp_path, "--tags", "confirm")
    assert after.returncode != 0, after.stdout
    assert "t2 came up on debian, not web" in after.stdout, after.stdout
    st1, st2 = t1.status(), t2.status()
    assert (st1["running"], st1["default"], st1["last_good"], st1["trial"]) == ("web", "web", "web", None), st1
    assert (st2["running"], st2["default"], st2["next_boot"]) == ("debian", "debian", "debian"), st2
    assert st2["last_good"] != "web" and st2["verdicts"].get("web", {}).get("verdict") == "failed", st2
    assert "t1: running web, next boot web, default web, last good web" in after.stdout, after.stdout
