"""Package manifests: what dpkg had installed in a BE, kept in the BE.

A manifest is recorded at checkpoint time (create, the apt hook, a
sandbox upgrade's result) from the BE's dpkg status file, read with
python-apt's `apt_pkg.TagFile` (dpkg's own format: continuation lines,
multi-line fields). It is stored in user properties of the BE's top
dataset, so it survives rollback, travels with `zfs send -R` and needs no
file inside the BE:

    org.bootenv:manifest     "v1 parts=N packages=P bytes=B"
    org.bootenv:manifest.0   base64 of zlib(text), cut into pieces of at
    ...                      most PART_BYTES (ZFS user property values
    org.bootenv:manifest.N-1 are limited to 8191 bytes)

The text is one `name:arch<TAB>version` line per installed package,
sorted. apt_pkg is imported by the functions that need it only (never on
`bootenv list` or `--version`).
"""

from __future__ import annotations

import base64
import os
import zlib
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from ..model import PROP_NS

PROP_MANIFEST = PROP_NS + "manifest"
PART_BYTES = 8000  # < 8191, ZFS's limit on a user property value
FORMAT = "v1"
STATUS_FILE = "var/lib/dpkg/status"
# dpkg states in which a package's files are on disk ("config-files" and
# "not-installed" leave nothing but conffiles behind).
PRESENT = frozenset(("installed", "half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending"))


class ManifestError(ValueError):
    """Manifest properties that do not decode (cut short, foreign, corrupt)."""


def part_prop(index: int) -> str:
    return f"{PROP_MANIFEST}.{index}"


@dataclass(frozen=True)
class Manifest:
    """name:arch -> version, for the packages present in a BE."""

    packages: Mapping[str, str]

    def text(self) -> str:
        return "".join(f"{name}\t{self.packages[name]}\n" for name in sorted(self.packages))

    @classmethod
    def from_text(cls, text: str) -> "Manifest":
        packages = {}
        for line in text.splitlines():
            name, sep, version = line.partition("\t")
            if not sep or not name:
                raise ManifestError(f"bad manifest line {line[:60]!r}")
            packages[name] = version
        return cls(packages)

    # -- properties

    def to_props(self) -> dict[str, str]:
        """The user properties that hold this manifest (header + parts)."""
        packed = base64.b64encode(zlib.compress(self.text().encode("utf-8"), 9)).decode("ascii")
        parts = [packed[i : i + PART_BYTES] for i in range(0, len(packed), PART_BYTES)] or [""]
        props = {part_prop(i): p for i, p in enumerate(parts)}
        props[PROP_MANIFEST] = f"{FORMAT} parts={len(parts)} packages={len(self.packages)} bytes={len(packed)}"
        return props

    @staticmethod
    def parts_of(header: Optional[str]) -> int:
        """How many part properties a header announces (0: no manifest)."""
        if not header:
            return 0
        fields = dict(f.split("=", 1) for f in header.split()[1:] if "=" in f)
        if header.split()[0] != FORMAT or not fields.get("parts", "").isdigit():
            raise ManifestError(f"unknown manifest header {header!r}")
        return int(fields["parts"])

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> Optional["Manifest"]:
        """The manifest in a BE's properties, None when it has none. Raise
        ManifestError when a part is missing or does not decode."""
        count = cls.parts_of(props.get(PROP_MANIFEST))
        if not count:
            return None
        missing = [part_prop(i) for i in range(count) if part_prop(i) not in props]
        if missing:
            raise ManifestError(f"manifest incomplete: {', '.join(missing)} missing")
        packed = "".join(props[part_prop(i)] for i in range(count))
        try:
            text = zlib.decompress(base64.b64decode(packed, validate=True)).decode("utf-8")
        except (ValueError, zlib.error) as exc:
            raise ManifestError(f"manifest does not decode: {exc}") from None
        return cls.from_text(text)


def stale_parts(old_header: Optional[str], new_props: Mapping[str, str]) -> list[str]:
    """The part properties an older, longer manifest left behind that the
    new one does not overwrite (to clear)."""
    try:
        old = Manifest.parts_of(old_header)
    except ManifestError:
        return []
    new = Manifest.parts_of(new_props.get(PROP_MANIFEST))
    return [part_prop(i) for i in range(new, old)]


def read_status(path: str) -> Manifest:
    """Given a dpkg status file, return the manifest of the packages present.
    Raise OSError if it cannot be read."""
    import apt_pkg  # python-apt: only here, never on the read path

    packages: dict[str, str] = {}
    # TagFile parses dpkg's format itself (folded fields, blank-line
    # separated stanzas); it opens the file by name.
    with open(path, "rb"):
        pass  # an OSError with the file name, not TagFile's SystemError
    with apt_pkg.TagFile(path) as tags:
        for section in tags:
            status = (section.get("Status") or "").split()
            if len(status) < 3 or status[2] not in PRESENT:
                continue
            name, version = section.get("Package"), section.get("Version")
            if not name or not version:
                continue
            arch = section.get("Architecture") or "all"
            packages[f"{name}:{arch}"] = version
    return Manifest(packages)


class StatusSource:
    """Where a BE's dpkg status file is, given where the BE is mounted
    (/ for the running BE). `prefix` is prepended to every path: "" on a
    real system; a directory of test trees for the fake backend (which
    mounts nothing: `prefix/run/bootenv/NAME/var/lib/dpkg/status`).
    `enabled` False records nothing (the default in unit tests)."""

    def __init__(self, prefix: str = "", *, enabled: bool = True):
        self.prefix = prefix
        self.enabled = enabled

    def status_file(self, mounted_at: str) -> str:
        return os.path.join(self.prefix + mounted_at.rstrip("/") + "/", STATUS_FILE)

    def read(self, mounted_at: str) -> Optional[Manifest]:
        """The manifest of the BE mounted at `mounted_at`; None when it has
        no dpkg status (not a Debian tree) or recording is off."""
        if not self.enabled:
            return None
        path = self.status_file(mounted_at)
        if not os.path.exists(path):
            return None
        return read_status(path)


NO_MANIFESTS = StatusSource(enabled=False)


# ------------------------------------------------------------ comparison


@dataclass(frozen=True)
class PackageChange:
    kind: str  # upgraded | downgraded | added | removed
    name: str  # name:arch
    old: Optional[str]
    new: Optional[str]


KINDS = ("upgraded", "downgraded", "added", "removed")


def compare(old: Manifest, new: Manifest) -> list[PackageChange]:
    """What going from `old` to `new` changes, as rpm-ostree db diff
    groups it: upgraded, downgraded (by apt_pkg.version_compare, Debian's
    ordering), added, removed; by kind, then name."""
    vercmp = _version_compare()
    changes: list[PackageChange] = []
    for name in sorted(set(old.packages) | set(new.packages)):
        a, b = old.packages.get(name), new.packages.get(name)
        if a == b:
            continue
        if a is None:
            changes.append(PackageChange("added", name, None, b))
        elif b is None:
            changes.append(PackageChange("removed", name, a, None))
        else:
            kind = "upgraded" if vercmp(b, a) > 0 else "downgraded"
            changes.append(PackageChange(kind, name, a, b))
    return sorted(changes, key=lambda c: (KINDS.index(c.kind), c.name))


def _version_compare():
    """apt_pkg.version_compare, initialising apt's system only if no one
    has (apt_pkg.config is process-global: leave a caller's alone)."""
    import apt_pkg

    try:
        apt_pkg.version_compare("0", "0")
    except ValueError:  # "_system not initialized"
        apt_pkg.init_config()
        apt_pkg.init_system()
    return apt_pkg.version_compare


def shown_name(name: str, native: Iterable[str] = ()) -> str:
    """name:arch as people read it: the arch only when it is foreign."""
    base, _, arch = name.rpartition(":")
    return base if arch in ("all", *native) else name
