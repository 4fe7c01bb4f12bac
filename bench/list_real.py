#!/usr/bin/env python3
"""Real-ZFS listing cost: bootenv's `list()` vs raw `zfs list`.

Runs in the QEMU guest (needs root and a pool):

    tests/vm/harness.py run --pool -- python3 bench/list_real.py

For trees of 10 and 100 filesystems under <pool>/bench-list (created with
lzc_create: in-process, unmounted), times, side by side and in one run:

    raw    `zfs list -H -p -r -t filesystem ROOT` (default columns)
    cli    ZfsCommands.list(ROOT, user_props=bootenv's)      (one zfs process)
    lzc    LzcZfs.list(ROOT, user_props=bootenv's)           (the same call)

and prints the median of REPEAT interleaved runs of each, and the ratios to raw.
Environment: BOOTENV_TEST_POOL (default betest), REPEAT (default 5).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bootenv.model import USER_PROPS  # noqa: E402
from bootenv.zfs.cli import ZfsCommands  # noqa: E402
from bootenv.zfs.lzc import LzcZfs  # noqa: E402

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
REPEAT = int(os.environ.get("REPEAT", "5"))
SIZES = (10, 100)


def build_tree(lzc, root: str, count: int) -> None:
    """`root` plus count-1 filesystems below it (a few levels deep, like
    BEs with /var, /usr children), each with a bootenv user property."""
    subprocess.run(["zfs", "destroy", "-r", root], capture_output=True)
    lzc.lzc_create(root.encode(), props={b"canmount": 2})
    made = 1
    be = 0
    while made < count:
        be_name = f"{root}/be{be}"
        lzc.lzc_create(be_name.encode(), props={b"canmount": 2, b"org.bootenv:title": f"be {be}".encode()})
        made += 1
        for child in ("var", "usr", "home"):
            if made >= count:
                break
            lzc.lzc_create(f"{be_name}/{child}".encode(), props={b"canmount": 2})
            made += 1
        be += 1


def main() -> int:
    import libzfs_core as lzc

    cli = ZfsCommands()
    lzcb = LzcZfs()
    rows = []
    for count in SIZES:
        root = f"{POOL}/bench-list{count}"
        build_tree(lzc, root, count)
        raw_argv = ["zfs", "list", "-H", "-p", "-r", "-t", "filesystem", root]
        runs = {
            "raw": lambda: subprocess.run(raw_argv, capture_output=True, text=True, check=True).stdout.splitlines(),
            "cli": lambda: cli.list(root, user_props=USER_PROPS),
            "lzc": lambda: lzcb.list(root, user_props=USER_PROPS),
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(REPEAT):  # interleaved, so drift hits all three alike
            for label, fn in runs.items():
                start = time.perf_counter()
                n = len(fn())
                times[label].append(time.perf_counter() - start)
                assert n == count, (label, n, count)
        t_raw, t_cli, t_lzc = (statistics.median(times[k]) for k in ("raw", "cli", "lzc"))
        rows.append((count, t_raw, t_cli, t_lzc))
        subprocess.run(["zfs", "destroy", "-r", root], check=True)

    print(f"\nlist(): median of {REPEAT} runs, seconds (ratio to raw `zfs list -H -p -r -t filesystem`)")
    print(f"{'filesystems':>11}  {'raw zfs list':>12}  {'ZfsCommands.list':>22}  {'LzcZfs.list':>22}")
    for count, t_raw, t_cli, t_lzc in rows:
        print(
            f"{count:>11}  {t_raw:>12.3f}  {t_cli:>12.3f} ({t_cli / t_raw:>5.2f}x)  "
            f"{t_lzc:>12.3f} ({t_lzc / t_raw:>5.2f}x)"
        )
    (count10, r10, c10, _), (count100, r100, c100, _) = rows
    print(f"growth 10 -> 100 filesystems: raw {r100 / r10:.2f}x, list() {c100 / c10:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
