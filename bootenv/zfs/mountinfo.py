"""Mount tables, and who holds a busy dataset.

`parse_mountinfo` reads /proc/PID/mountinfo. `explain_busy` answers the
question ZFS's EBUSY leaves open: *who* holds the dataset. Two kinds of
holder exist:

- another mount namespace. Services that run with private mounts
  (systemd-udevd on every systemd Debian, any unit with PrivateTmp=,
  ProtectSystem= and friends) receive copies of the host's mounts; a copy
  that outlives the host's unmount keeps the dataset mounted, invisible in
  the admin's own /proc/self/mountinfo, and `zfs destroy` says "busy".
- a process in this namespace whose working directory, root or an open
  file is inside the mount (what makes `umount` say "target is busy").

Both are found by scanning /proc (one read of ns/mnt per process, one
mountinfo per namespace): only on the error path, never on a listing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional

_OCTAL = re.compile(r"\\([0-7]{3})")
UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".slice")
MAX_NAMED = 5  # holders named in one message


def unescape_mountinfo(field: str) -> str:
    r"""Undo the kernel's octal escapes in a mountinfo field (\040 space,
    \011 tab, \012 newline, \134 backslash)."""
    raw = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)
    # Non-ASCII bytes arrive escaped one byte at a time: rebuild them.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def parse_mountinfo(text: str) -> list[tuple[str, str, str]]:
    """Given /proc/self/mountinfo, return (mountpoint, fstype, source) for
    every mount, in mount order (a later entry on the same path covers an
    earlier one)."""
    mounts: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        mounts.append((unescape_mountinfo(fields[4]), fields[sep + 1], unescape_mountinfo(fields[sep + 2])))
    return mounts


# ------------------------------------------------------------ holders


@dataclass(frozen=True)
class NamespaceHold:
    """Datasets still mounted in a mount namespace other than ours."""

    namespace: str  # "mnt:[4026532219]"
    pid: int  # one process in it (the lowest pid)
    command: str
    unit: Optional[str]  # its systemd unit, when it runs in one
    mountpoints: tuple[str, ...]  # where the datasets are mounted there
    processes: int  # how many processes share that namespace

    def describe(self) -> str:
        unit = f", {self.unit}" if self.unit else ""
        where = ", ".join(self.mountpoints)
        return f"mount namespace {self.namespace} of {self.command} (pid {self.pid}{unit}) at {where}"

    def release(self) -> str:
        # Restarting the service is what always works: measured on a booted
        # Debian 12, unmounting the copies inside udevd's namespace (nsenter)
        # left the dataset busy until systemd-udevd restarted.
        how = f"nsenter -t {self.pid} -m umount {' '.join(reversed(self.mountpoints))}"
        if self.unit and self.unit.endswith(".service"):
            return f"'systemctl restart {self.unit}' (or '{how}')"
        return f"stopping pid {self.pid} (or '{how}')"


@dataclass(frozen=True)
class ProcessUse:
    """A process of our own namespace using a path inside a mount."""

    pid: int
    command: str
    unit: Optional[str]
    how: str  # "working directory /x", "root /x", "open file /x/y"

    def describe(self) -> str:
        unit = f", {self.unit}" if self.unit else ""
        return f"{self.command} (pid {self.pid}{unit}): {self.how}"


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(e) for e in os.listdir(proc) if e.isdigit())
    except OSError:
        return []


def _unit(proc: str, pid: int) -> Optional[str]:
    """The systemd unit a process runs in, from its cgroup path."""
    try:
        text = _read(f"{proc}/{pid}/cgroup")
    except OSError:
        return None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith(UNIT_SUFFIXES) and not part.endswith(".slice"):
                return part
    return None


def _comm(proc: str, pid: int) -> str:
    try:
        return _read(f"{proc}/{pid}/comm").strip() or "?"
    except OSError:
        return "?"


def _is_dataset_source(source: str, datasets: set[str]) -> bool:
    # A snapshot mounted (.zfs/snapshot automounts) holds its filesystem too.
    return source in datasets or source.split("@", 1)[0] in datasets


def namespace_holds(datasets: Iterable[str], proc: str = "/proc") -> list[NamespaceHold]:
    """Every mount namespace other than ours in which one of `datasets` (or
    a snapshot of one) is mounted, with one process that lives in it."""
    wanted = set(datasets)
    try:
        ours = os.readlink(f"{proc}/self/ns/mnt")
    except OSError:
        ours = None
    members: dict[str, list[int]] = {}
    for pid in _pids(proc):
        try:
            ns = os.readlink(f"{proc}/{pid}/ns/mnt")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if ns != ours:
            members.setdefault(ns, []).append(pid)
    holds: list[NamespaceHold] = []
    for ns, pids in members.items():
        for pid in pids:  # any member shows the namespace's table; the first readable one
            try:
                table = parse_mountinfo(_read(f"{proc}/{pid}/mountinfo"))
            except OSError:
                continue
            where = tuple(mp for mp, fstype, src in table if fstype == "zfs" and _is_dataset_source(src, wanted))
            if where:
                holds.append(NamespaceHold(ns, pid, _comm(proc, pid), _unit(proc, pid), where, len(pids)))
            break
    return holds


def _inside(path: str, mountpoints: Iterable[str]) -> bool:
    return any(path == mp or path.startswith(mp.rstrip("/") + "/") for mp in mountpoints)


def process_uses(mountpoints: Iterable[str], proc: str = "/proc") -> list[ProcessUse]:
    """The processes (of any namespace) whose working directory, root or an
    open file lies inside one of `mountpoints`."""
    mps = [os.path.normpath(m) for m in mountpoints]
    if not mps:
        return []
    uses: list[ProcessUse] = []
    for pid in _pids(proc):
        if pid == os.getpid():
            continue
        how = None
        for link, label in (("cwd", "working directory"), ("root", "root")):
            try:
                target = os.readlink(f"{proc}/{pid}/{link}")
            except OSError:
                continue
            if _inside(target, mps):
                how = f"{label} {target}"
                break
        if how is None:
            try:
                fds = os.listdir(f"{proc}/{pid}/fd")
            except OSError:
                fds = []
            for fd in fds:
                try:
                    target = os.readlink(f"{proc}/{pid}/fd/{fd}")
                except OSError:
                    continue
                if _inside(target, mps):
                    how = f"open file {target}"
                    break
        if how:
            uses.append(ProcessUse(pid, _comm(proc, pid), _unit(proc, pid), how))
    return uses


def explain_busy(datasets: Iterable[str], mountpoints: Iterable[str] = (), proc: str = "/proc") -> str:
    """One sentence naming what holds `datasets` busy and how to release
    it: mounts left in other namespaces, then processes using
    `mountpoints`. When nothing is found, say where to look: a service's
    namespace can keep a dataset busy without showing the mount."""
    datasets = list(datasets)
    holds = namespace_holds(datasets, proc)
    uses = process_uses(mountpoints, proc)
    parts: list[str] = []
    if holds:
        named = holds[:MAX_NAMED]
        more = f" and {len(holds) - len(named)} more" if len(holds) > len(named) else ""
        parts.append(
            "still mounted in the " + "; the ".join(h.describe() for h in named) + more
            + "; release it with " + "; ".join(h.release() for h in named)
        )
    if uses:
        named_uses = uses[:MAX_NAMED]
        more = f" and {len(uses) - len(named_uses)} more" if len(uses) > len(named_uses) else ""
        parts.append("in use by " + "; ".join(u.describe() for u in named_uses) + more
                     + "; stop them or leave the directory")
    if not parts:
        parts.append("no process or mount namespace shows it mounted; a service with private mounts "
                     "(systemd-udevd, PrivateTmp=, ProtectSystem=) can still hold a copy it received: "
                     "restart it ('systemctl restart systemd-udevd.service')")
    return "; ".join(parts)
