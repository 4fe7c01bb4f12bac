"""Check that this interpreter runs on Debian's own typer, click and
tabulate (python3-typer, python3-click, python3-tabulate from
/usr/lib/python3/dist-packages), the versions the .deb depends on, and
not on copies pip installed. Run by `make test-fast-debian` before the
suite; exit 1 with the reason otherwise."""

from __future__ import annotations

import sys
from importlib.metadata import distribution

# The versions each Debian release has (only bookworm's are checked yet).
WANTED = {"bookworm": {"typer": "0.7.0", "click": "8.1.3", "tabulate": "0.8.9"}}
DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def codename(path: str = "/etc/os-release") -> str:
    """This system's VERSION_CODENAME (bookworm, trixie, ...)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_CODENAME":
                    return value.strip('"')
    except OSError:
        pass
    return "unknown"


def main() -> int:
    wrong = []
    release = codename()
    for name in ("typer", "click", "tabulate"):
        version = WANTED.get(release, {}).get(name)
        dist = distribution(name)
        where = str(dist.locate_file(""))
        print(f"{name} {dist.version} from {where}")
        if not where.startswith(DIST_PACKAGES):
            wrong.append(f"{name} comes from {where}, not Debian's {DIST_PACKAGES}")
        elif version and dist.version != version:
            wrong.append(f"{name} is {dist.version}, {release}'s is {version}")
    for reason in wrong:
        print(f"debian_versions: {reason}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
