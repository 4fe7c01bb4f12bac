#!/usr/bin/env python3
"""`make demo`: bootenv on a real OpenZFS pool, in a QEMU guest.

Builds the guest image and the root-on-ZFS disk on first use (cached under
$BOOTENV_VM_CACHE), boots the guest with this checkout shared and the disk
attached, and runs tests/vm/demo_apt.py there (apt-clone's story on a real
root-on-ZFS Debian) with its output on the terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import image  # noqa: E402


def main() -> int:
    try:
        result = harness.run_guest(
            "python3 tests/vm/demo_apt.py",
            run_dir=image.OUT / "demo",
            disks=1,
            rootdisk=True,
            timeout=1500,
            live=True,
        )
    except (harness.HarnessError, image.ImageError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    if result.problem():
        print(f"demo: {result.problem()}", file=sys.stderr)
        return 1
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
