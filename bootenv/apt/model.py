"""What an apt operation will do, decided before anything changes.

`AptRequest` is what the user asked for (`dist-upgrade`, `install vim`),
`AptPlan` what apt would do about it (the packages it installs, upgrades
and removes, what it downloads and writes, whether a reboot follows). Both
are plain values: the python-apt planner (planner.py) and the fake used by
tests (fake.py) build them alike, and nothing here imports python-apt.

The errors are the ones a user meets before any dataset is created.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Iterable, Optional

from ..errors import LockHeld, OperationFailed, Refused, UsageError

ACTIONS = ("dist-upgrade", "full-upgrade", "upgrade", "install", "remove", "purge")
UPGRADES = ("dist-upgrade", "full-upgrade", "upgrade")

# ZFS refuses a user property value of 8192 bytes or more (ZAP_MAXVALUELEN);
# keep org.bootenv:packages well inside it.
MAX_PACKAGES_PROP = 8000

# A change to any of these needs a reboot to take effect: the kernel (and
# the ZFS module built for it), the C library every process maps, PID 1,
# the system bus, and what builds the initramfs the next boot uses.
REBOOT_PACKAGES = (
    "linux-image-*",
    "linux-headers-*",
    "linux-modules-*",
    "linux-signed-*",
    "libc6",
    "libc6:*",
    "systemd",
    "systemd-sysv",
    "libsystemd0",
    "init",
    "sysvinit-core",
    "dbus",
    "dbus-daemon",
    "dbus-broker",
    "initramfs-tools",
    "initramfs-tools-core",
    "dracut",
    "dracut-core",
    "zfs-dkms",
    "zfs-initramfs",
    "zfsutils-linux",
    "grub-pc",
    "grub-efi-amd64",
)
# Debian's own signal: postinst scripts (the kernel's, libc's) create it.
REBOOT_REQUIRED_FILES = ("run/reboot-required", "var/run/reboot-required")


class AptError(OperationFailed):
    """apt failed, or python-apt could not read the package state."""


class UnknownPackage(UsageError):
    """A package name apt does not know (or that has no candidate)."""


class HeldPackages(Refused):
    """The change needs a package the admin put on hold (apt-mark hold)."""


class BrokenPackages(Refused):
    """apt cannot find a consistent set of packages for the request."""


class AptLocked(LockHeld):
    """Another process (apt, dpkg, unattended-upgrades) holds the apt lock."""


class NotEnoughSpace(Refused):
    """The pool has less free space than the change needs."""


class UpdateFailed(AptError):
    """`apt-get update` failed: no network to the mirror, a bad source."""


@dataclass(frozen=True)
class AptRequest:
    """What the user asked apt to do: an action and, for install / remove /
    purge, the package names."""

    action: str
    packages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise UsageError(f"unknown apt action {self.action!r} (want one of {', '.join(ACTIONS)})")
        if self.action in UPGRADES and self.packages:
            raise UsageError(f"{self.action} takes no package names")
        if self.action not in UPGRADES and not self.packages:
            raise UsageError(f"{self.action} needs at least one package name")
        for name in self.packages:
            if not name or name.startswith("-") or any(c.isspace() for c in name):
                raise UsageError(f"not a package name: {name!r}")

    def apt_args(self) -> list[str]:
        """The apt-get arguments for this request (after the options)."""
        action = "dist-upgrade" if self.action == "full-upgrade" else self.action
        return [action, *self.packages]

    @property
    def text(self) -> str:
        """A one-line description: `apt-get install vim curl`."""
        return " ".join(["apt-get", self.action, *self.packages])


@dataclass(frozen=True)
class Change:
    """One package apt will touch. `action` is install, upgrade, downgrade,
    reinstall, remove or purge; `old`/`new` are versions (None if absent)."""

    name: str
    action: str
    old: Optional[str] = None
    new: Optional[str] = None

    MARK = {"install": "+", "upgrade": "^", "downgrade": "v", "reinstall": "=", "remove": "-", "purge": "-"}

    def compact(self, versions: bool = True) -> str:
        mark = self.MARK.get(self.action, "?")
        version = self.new if self.action not in ("remove", "purge") else None
        return f"{mark}{self.name}" + (f"={version}" if versions and version else "")


@dataclass(frozen=True)
class AptPlan:
    """What apt will do for a request, and what it costs."""

    request: AptRequest
    changes: tuple[Change, ...] = ()
    download_bytes: int = 0  # what apt fetches into the archive cache
    space_bytes: int = 0  # apt's "after this operation, N bytes will be used" (may be < 0)
    write_bytes: int = 0  # installed size of what gets unpacked (new blocks on disk)
    kept_back: tuple[str, ...] = ()  # upgradable but not upgraded (held, or would remove)
    reboot_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def of(self, *actions: str) -> list[Change]:
        return [c for c in self.changes if c.action in actions]

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def reboot_needed(self) -> bool:
        return bool(self.reboot_reasons)

    @property
    def needed_bytes(self) -> int:
        """Space the change takes on the pool. The checkpoint keeps every
        block the change overwrites or deletes, so nothing is freed: the
        downloads plus everything unpacked, whatever apt's own figure says."""
        return self.download_bytes + max(self.write_bytes, self.space_bytes, 0)

    def summary(self) -> str:
        """apt's count line: `2 upgraded, 1 newly installed, 0 to remove`."""
        return (
            f"{len(self.of('upgrade'))} upgraded, {len(self.of('install'))} newly installed, "
            f"{len(self.of('remove', 'purge'))} to remove, {len(self.kept_back)} not upgraded"
            + (f", {len(self.of('downgrade'))} downgraded" if self.of("downgrade") else "")
        )

    def describe(self) -> list[str]:
        """The plan as apt shows it: package lists, counts, sizes, reboot."""
        lines: list[str] = []
        sections = (
            ("The following NEW packages will be installed:", ("install",)),
            ("The following packages will be upgraded:", ("upgrade",)),
            ("The following packages will be DOWNGRADED:", ("downgrade",)),
            ("The following packages will be reinstalled:", ("reinstall",)),
            ("The following packages will be REMOVED:", ("remove", "purge")),
        )
        for title, actions in sections:
            changes = self.of(*actions)
            if changes:
                lines.append(title)
                lines.extend(_wrap([_change_text(c) for c in changes]))
        if self.kept_back:
            lines.append("The following packages have been kept back:")
            lines.extend(_wrap(list(self.kept_back)))
        lines.append(self.summary() + ".")
        lines.append(f"Need to get {human(self.download_bytes)} of archives.")
        if self.space_bytes >= 0:
            lines.append(f"After this operation, {human(self.space_bytes)} of additional disk space will be used.")
        else:
            lines.append(f"After this operation, {human(-self.space_bytes)} disk space will be freed.")
        lines.extend(self.notes)
        if self.reboot_needed:
            lines.append("A reboot will be needed: " + "; ".join(self.reboot_reasons) + ".")
        return lines

    def packages_property(self, limit: int = MAX_PACKAGES_PROP) -> str:
        """org.bootenv:packages: the count and a compact list (`3: ^bash=5.2
        +vim=9.0 -nano`), with versions if they fit, else names, else as
        many names as fit and `...+N`. Never longer than `limit` bytes."""
        head = f"{len(self.changes)}:"
        for versions in (True, False):
            text = " ".join([head, *(c.compact(versions) for c in self.changes)])
            if len(text.encode()) <= limit:
                return text
        parts = [head]
        size = len(head.encode())
        for n, change in enumerate(self.changes):
            item = change.compact(False)
            tail = f" ...+{len(self.changes) - n}"
            if size + 1 + len(item.encode()) + len(f" ...+{len(self.changes)}".encode()) > limit:
                return " ".join(parts) + tail
            parts.append(item)
            size += 1 + len(item.encode())
        return " ".join(parts)


def _change_text(change: Change) -> str:
    if change.action in ("upgrade", "downgrade") and change.old and change.new:
        return f"{change.name} ({change.old} => {change.new})"
    if change.action == "purge":
        return f"{change.name}*"
    return change.name


def _wrap(words: list[str], width: int = 78) -> list[str]:
    lines, line = [], " "
    for word in words:
        if len(line) + 1 + len(word) > width and line.strip():
            lines.append(line)
            line = " "
        line += " " + word
    if line.strip():
        lines.append(line)
    return lines


def human(nbytes: int) -> str:
    """Bytes as apt prints them (kB = 1000 bytes): 0 B, 812 kB, 23.4 MB."""
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{nbytes} B"  # pragma: no cover


def reboot_reasons(changes: Iterable[Change], root: str = "/") -> tuple[str, ...]:
    """Why the change needs a reboot: each package that matches
    REBOOT_PACKAGES, and Debian's reboot-required file if it is already
    there under `root` (a reboot is pending anyway)."""
    reasons = []
    for change in changes:
        if any(fnmatch.fnmatchcase(change.name, pattern) for pattern in REBOOT_PACKAGES):
            reasons.append(f"{change.name} {'is removed' if change.action in ('remove', 'purge') else 'changes'}")
    signal = reboot_required_signal(root)
    if signal:
        reasons.append(signal)
    return tuple(reasons)


def reboot_required_signal(root: str = "/") -> Optional[str]:
    """Debian's reboot-required file under `root`, described, or None."""
    for rel in REBOOT_REQUIRED_FILES:
        path = os.path.join(root, rel)
        if os.path.exists(path):
            pkgs_path = path + ".pkgs"
            who = ""
            try:
                with open(pkgs_path, encoding="utf-8", errors="replace") as f:
                    names = sorted({line.strip() for line in f if line.strip()})
                if names:
                    who = f" (by {', '.join(names)})"
            except OSError:
                pass
            return f"/{rel} says a reboot is already pending{who}"
    return None


def check_space(plan: AptPlan, free: int, pool: str) -> None:
    """Raise NotEnoughSpace naming both figures if `plan` does not fit in
    `free` bytes."""
    needed = plan.needed_bytes
    if needed > free:
        raise NotEnoughSpace(
            f"not enough space on pool {pool}: the change needs {human(needed)} "
            f"({human(plan.download_bytes)} to download, {human(max(plan.write_bytes, plan.space_bytes, 0))} "
            f"to unpack, none freed while the checkpoint keeps the old files) but the pool has {human(free)} free"
        )
