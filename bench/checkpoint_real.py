#!/usr/bin/env python3
"""Real-ZFS checkpoint cost: snapshot + clone of a filesystem holding
20 MB vs 1 GB of data. Copy-on-write: the time must not grow with data.

Runs in the QEMU guest (needs root and a pool of at least 2 GB):

    tests/vm/harness.py run --pool -- python3 bench/checkpoint_real.py

For each size, writes that much incompressible data (urandom) into a fresh
filesystem, syncs the pool, then times REPEAT checkpoints with each backend:
`snapshot([fs@ckN], props)` then `clone(fs@ckN, fs-ckN, {canmount: noauto,
mountpoint: /, org.bootenv:*})`, i.e. what `bootenv create` does. Prints the
median per backend and size, the ratio 1 GB / 20 MB, and the pool space
the checkpoints took.
Environment: BOOTENV_TEST_POOL (default betest), REPEAT (default 3),
BIG_MB (default 1024).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bootenv.zfs.cli import ZfsCommands  # noqa: E402
from bootenv.zfs.lzc import LzcZfs  # noqa: E402

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
REPEAT = int(os.environ.get("REPEAT", "3"))
SIZES_MB = (20, int(os.environ.get("BIG_MB", "1024")))


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def fill(fs: str, mb: int) -> float:
    """Create `fs` (mounted at /<fs>) and write `mb` MB of urandom; return seconds."""
    subprocess.run(["zfs", "destroy", "-r", fs], capture_output=True)
    sh("zfs", "create", "-o", "compression=off", "-o", f"mountpoint=/{fs}", fs)
    start = time.perf_counter()
    sh("dd", "if=/dev/urandom", f"of=/{fs}/data", "bs=1M", f"count={mb}", "status=none")
    sh("sync")
    sh("zpool", "sync", POOL)
    return time.perf_counter() - start


def main() -> int:
    backends = {"lzc": LzcZfs(), "cli": ZfsCommands()}
    results: dict[tuple[str, int], float] = {}
    for mb in SIZES_MB:
        fs = f"{POOL}/bench-ck{mb}"
        fill_s = fill(fs, mb)
        used = int(sh("zfs", "get", "-H", "-p", "-o", "value", "used", fs))
        print(f"{fs}: {used / 2**20:.0f} MiB used, written in {fill_s:.1f} s", flush=True)
        free_before = int(sh("zpool", "get", "-H", "-p", "-o", "value", "free", POOL))
        for label, backend in backends.items():
            times = []
            for i in range(REPEAT):
                snap = f"{fs}@ck-{label}{i}"
                clone = f"{fs}-ck-{label}{i}"
                start = time.perf_counter()
                backend.snapshot([snap], {"org.bootenv:snapshot": "yes"})
                backend.clone(
                    snap,
                    clone,
                    {"canmount": "noauto", "mountpoint": "/", "org.bootenv:kind": "manual", "org.bootenv:title": "bench"},
                )
                times.append(time.perf_counter() - start)
            results[(label, mb)] = statistics.median(times)
        sh("zpool", "sync", POOL)
        free_after = int(sh("zpool", "get", "-H", "-p", "-o", "value", "free", POOL))
        print(
            f"  {2 * REPEAT} checkpoints of {mb} MB took {(free_before - free_after) / 2**20:.2f} MiB of pool space",
            flush=True,
        )
        for label in backends:
            for i in range(REPEAT):
                sh("zfs", "destroy", f"{fs}-ck-{label}{i}")
        sh("zfs", "destroy", "-r", fs)

    small, big = SIZES_MB
    print(f"\ncheckpoint (snapshot + clone with props): median of {REPEAT}, seconds")
    print(f"{'backend':>8}  {f'{small} MB':>10}  {f'{big} MB':>10}  {'ratio':>6}")
    for label in backends:
        a, b = results[(label, small)], results[(label, big)]
        print(f"{label:>8}  {a:>10.3f}  {b:>10.3f}  {b / a:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
