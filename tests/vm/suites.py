"""Which Debian release the VM suite's guest runs (the image and the root
disk are built from it: image.py, rootdisk.py), and where its runs keep
their dirs. Apart from image.py so that choosing the default rebuilds no
image: the recipe hash covers image.py and the suite's name.

    BOOTENV_VM_SUITE=bookworm|trixie   (default: DEFAULT_SUITE)

`make test-vm` runs the whole VM suite on DEFAULT_SUITE and, at the same
time, OTHER_TESTS and OTHER_CHAINS on the other suite (`python
tests/vm/suites.py other`, `... other-tests` and `... other-chains` print
them for the Makefile).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITES = ("bookworm", "trixie")
DEFAULT_SUITE = "trixie"  # Debian 13, the current stable; bookworm keeps a smaller set
SUITE = os.environ.get("BOOTENV_VM_SUITE") or DEFAULT_SUITE
# The run dirs (run, test-vm, boots, rootdisk, demo): a suite other than
# the default apart, below .out/SUITE, so runs of both suites can go at
# once (`make test-vm`).
OUT = HERE / ".out" if SUITE == DEFAULT_SUITE else HERE / ".out" / SUITE
OTHER_SUITE = next(s for s in SUITES if s != DEFAULT_SUITE)
# What runs on the other suite (guest tests: paths for BOOTENV_VM_TESTS):
# on bookworm, the contract suite on both backends and the .deb's
# lifecycle; on trixie, every guest test.
OTHER_TESTS = {
    "bookworm": ("tests/contract", "tests/vm/guest/test_package_real.py"),
    "trixie": ("tests/contract", "tests/vm/guest", "tests/vm/guest_rootdisk"),
}[OTHER_SUITE]
# And its boots (tests/vm/test_boots.py): the 30-run retention series and
# a rollback of a rollback after it (boot/chain_grub.py RetentionChain);
# the OpenZFS guide's boot pool layout and Ubuntu's installer layout
# (boot/chain_bpool.py, a disk each).
OTHER_CHAINS = ("retention", "bpool", "ubuntu")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "other":
        print(OTHER_SUITE)
    elif what == "other-tests":
        print(" ".join(OTHER_TESTS))
    elif what == "other-chains":
        print(" ".join(OTHER_CHAINS))
    else:
        sys.exit(f"usage: {sys.argv[0]} other|other-tests|other-chains")
