"""bootenv/zfs/mountinfo.py on a fake /proc: who holds a busy dataset."""

from __future__ import annotations

from bootenv.zfs.mountinfo import explain_busy, namespace_holds, process_uses

from ..fake_proc import FakeProc


def proc_with_udevd(tmp_path) -> FakeProc:
    proc = FakeProc(tmp_path / "proc", self_pid=1)
    proc.add(1, "systemd", ns="mnt:[1]", unit="init.scope")
    proc.add(318, "systemd-udevd", ns="mnt:[4026532219]", unit="systemd-udevd.service",
             mounts=[("/run/bootenv/x", "rpool/ROOT/x"), ("/run/bootenv/x/var", "rpool/ROOT/x/var")])
    proc.add(319, "systemd-udevd", ns="mnt:[4026532219]", unit="systemd-udevd.service",
             mounts=[("/run/bootenv/x", "rpool/ROOT/x")])
    proc.add(400, "chronyd", ns="mnt:[4026532300]", unit="chrony.service")
    return proc


def test_a_mount_left_in_a_service_namespace_is_found_once_per_namespace(tmp_path):
    proc = proc_with_udevd(tmp_path)
    holds = namespace_holds(["rpool/ROOT/x", "rpool/ROOT/x/var"], proc.path)
    assert len(holds) == 1
    hold = holds[0]
    assert (hold.namespace, hold.pid, hold.command, hold.unit) == ("mnt:[4026532219]", 318, "systemd-udevd", "systemd-udevd.service")
    assert hold.mountpoints == ("/run/bootenv/x", "/run/bootenv/x/var")
    assert hold.processes == 2
    assert "nsenter -t 318 -m umount /run/bootenv/x/var /run/bootenv/x" in hold.release()
    assert "systemctl restart systemd-udevd.service" in hold.release()


def test_our_own_namespace_and_other_datasets_are_not_holders(tmp_path):
    proc = proc_with_udevd(tmp_path)
    proc.add(2, "bash", ns="mnt:[1]", mounts=[("/run/bootenv/y", "rpool/ROOT/y")])
    assert namespace_holds(["rpool/ROOT/y"], proc.path) == []
    assert namespace_holds(["rpool/ROOT/xy", "rpool/ROOT"], proc.path) == []


def test_a_mounted_snapshot_holds_its_filesystem(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, "systemd")
    proc.add(50, "sleep", ns="mnt:[9]", mounts=[("/x/.zfs/snapshot/s", "rpool/ROOT/x@s")])
    assert [h.pid for h in namespace_holds(["rpool/ROOT/x"], proc.path)] == [50]
    assert "stopping pid 50" in namespace_holds(["rpool/ROOT/x"], proc.path)[0].release()


def test_processes_using_a_mount(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, "systemd")
    proc.add(10, "bash", cwd="/run/bootenv/x/etc")
    proc.add(11, "dpkg", root="/run/bootenv/x")
    proc.add(12, "less", fds=["/dev/pts/0", "/run/bootenv/x/var/log/apt/term.log"])
    proc.add(13, "vim", cwd="/run/bootenv/xy")  # a sibling, not inside
    uses = process_uses(["/run/bootenv/x"], proc.path)
    assert [(u.pid, u.how) for u in uses] == [
        (10, "working directory /run/bootenv/x/etc"),
        (11, "root /run/bootenv/x"),
        (12, "open file /run/bootenv/x/var/log/apt/term.log"),
    ]


def test_explain_busy_names_holders_and_the_way_out(tmp_path):
    proc = proc_with_udevd(tmp_path)
    proc.add(20, "bash", cwd="/run/bootenv/x")
    text = explain_busy(["rpool/ROOT/x"], ["/run/bootenv/x"], proc.path)
    assert text.startswith("still mounted in the mount namespace mnt:[4026532219] of systemd-udevd (pid 318, systemd-udevd.service)")
    assert "in use by bash (pid 20, session-1.scope): working directory /run/bootenv/x" in text
    nothing = explain_busy(["rpool/ROOT/z"], [], proc.path)
    assert nothing.startswith("no process or mount namespace shows it mounted") and "systemctl restart" in nothing


def test_unreadable_or_vanished_processes_are_skipped(tmp_path):
    proc = proc_with_udevd(tmp_path)
    (tmp_path / "proc" / "777").mkdir()  # exited between listdir and readlink
    assert [h.pid for h in namespace_holds(["rpool/ROOT/x"], proc.path)] == [318]
    assert namespace_holds(["rpool/ROOT/x"], str(tmp_path / "nothing")) == []
