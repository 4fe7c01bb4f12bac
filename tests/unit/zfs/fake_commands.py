"""A recording fake `zfs` (and `zpool`, `mount`, `umount`) on PATH that
answers from a script of canned replies; the `cmds` and `zfs` fixtures."""

from __future__ import annotations

import json
import stat
import sys

import pytest

from bootenv.zfs.base import (
    LIST_PROPERTIES,
)
from bootenv.zfs.cli import ZfsCommands
from bootenv.run import Runner

# ------------------------------------------------------------------ fakes

FAKE_CMD = """\
import json, os, sys
state = os.environ["FAKECMD_STATE"]
prog = os.path.basename(sys.argv[0])
argv = [prog] + sys.argv[1:]
with open(os.path.join(state, "calls.jsonl"), "a") as f:
    f.write(json.dumps(argv) + "\\n")
with open(os.path.join(state, "replies.json")) as f:
    replies = json.load(f)
for reply in replies:
    if argv[: len(reply["prefix"])] == reply["prefix"]:
        sys.stdout.write(reply.get("stdout", ""))
        sys.stderr.write(reply.get("stderr", ""))
        sys.exit(reply.get("rc", 0))
sys.exit(0)
"""


class FakeCommands:
    """Recording fake zfs/zpool/mount/umount on PATH."""

    def __init__(self, tmp_path, monkeypatch):
        self.dir = tmp_path / "fakecmd"
        self.bin = self.dir / "bin"
        self.bin.mkdir(parents=True)
        for prog in ("zfs", "zpool", "mount", "umount"):
            path = self.bin / prog
            path.write_text(f"#!{sys.executable}\n{FAKE_CMD}")
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("FAKECMD_STATE", str(self.dir))
        monkeypatch.setenv("PATH", f"{self.bin}:/usr/bin:/bin")
        self.replies: list[dict] = []
        self.mountinfo = self.dir / "mountinfo"
        self.mountinfo.write_text("")
        self._save()

    def _save(self):
        (self.dir / "replies.json").write_text(json.dumps(self.replies))

    def reply(self, *prefix: str, stdout: str = "", stderr: str = "", rc: int = 0):
        """Answer commands starting with `prefix` (first match wins)."""
        self.replies.append({"prefix": list(prefix), "stdout": stdout, "stderr": stderr, "rc": rc})
        self._save()

    @property
    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def mount_line(self, mountpoint: str, source: str, fstype: str = "zfs") -> str:
        return f"100 1 0:50 / {mountpoint} rw,relatime shared:1 - {fstype} {source} rw,xattr,posixacl\n"


@pytest.fixture
def cmds(tmp_path, monkeypatch):
    return FakeCommands(tmp_path, monkeypatch)


@pytest.fixture
def zfs(cmds):
    return ZfsCommands(Runner(), mountinfo=str(cmds.mountinfo))


def row(name: str, **props: str) -> str:
    values = {p: "-" for p in LIST_PROPERTIES}
    values["type"] = "snapshot" if "@" in name else "filesystem"
    values.update(props)
    return "\t".join([name, *(values[p] for p in LIST_PROPERTIES)])
