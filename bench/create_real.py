#!/usr/bin/env python3
"""`bootenv create` at 100 BEs against its time at 1 BE, on a booted
root-on-ZFS system with its real bootloader (the GRUB driver: update-grub,
42_bootenv reading org.bootenv:kernels): issue 16's "a checkpoint whose
cost does not grow with the number of BEs".

Side by side in one run, median of TRIES (ms), the two pool sizes
interleaved try by try (drift in the shared guest hits both alike):

    create       bootenv create benchck          (the whole process)
    update-grub  update-grub alone               (what create's menu update costs)

each create destroyed again (untimed) before the next: with the running
BE alone (1 BE), and with BES-1 more (100 in all), made in process
(libzfs_core: one snapshot of the running BE, BES-1 clones of it) with the
org.bootenv: properties bootenv gives a checkpoint of the running system,
its kernels record too (kernels.boot_record: 42_bootenv trusts it and
mounts nothing), and destroyed in process again, so building them costs
no update-grub. Prints the ratio 100 BEs / 1 BE of each row.

Runs as root on the booted disk (BOOTENV_VM_ONLY=bench_create
tests/vm/boots.py run grub), with the running system's bootenv:

    python3 bench/create_real.py [--tries 3] [--bes 100]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bootenv from this tree


def sh(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"create_real: {shlex.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    sh(argv)
    return time.perf_counter() - start


def count_bes(root: str) -> int:
    return len(sh(["zfs", "list", "-H", "-d", "1", "-t", "filesystem", "-o", "name", root]).split()) - 1


def timed_create(bootenv: list[str]) -> float:
    took = timed([*bootenv, "create", "benchck"])
    sh([*bootenv, "destroy", "-y", "benchck"])
    return took


def fan_out(root: str, running: str, count: int) -> list[str]:
    """count clones of a snapshot of the running BE, made in process with
    what bootenv records on a checkpoint of the running system. Return
    their datasets."""
    import libzfs_core as lzc

    from bootenv.boot.kernels import boot_record

    snap = f"{running}@bench-fan"
    lzc.lzc_snapshot([snap.encode()])
    referenced = sh(["zfs", "get", "-H", "-p", "-o", "value", "referenced", snap]).strip()
    record = boot_record("/", int(referenced))  # a clone's referenced is its origin's
    gen = int(sh(["zfs", "get", "-H", "-p", "-o", "value", "org.bootenv:next-generation", root]).strip().replace("-", "") or 1)
    made = []
    for i in range(count):
        props = {"canmount": 2, "mountpoint": b"/",  # canmount: 2 is noauto to libzfs_core
                 "org.bootenv:kind": b"manual", "org.bootenv:title": f"fan-out {i}".encode(),
                 "org.bootenv:origin-be": running.rsplit("/", 1)[1].encode(), "org.bootenv:state": b"complete",
                 "org.bootenv:created": str(int(time.time())).encode(), "org.bootenv:generation": str(gen + 1000 + i).encode(),
                 "org.bootenv:kernels": record.encode()}
        name = f"{root}/fan{i:03d}"
        lzc.lzc_clone(name.encode(), snap.encode(), {k.encode(): v for k, v in props.items()})
        made.append(name)
    return made + [snap]


def fan_in(made: list[str]) -> None:
    import libzfs_core as lzc

    *clones, snap = made
    for name in clones:
        lzc.lzc_destroy(name.encode())
    lzc.lzc_destroy_snaps([snap.encode()], defer=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bes", type=int, default=100, help="BEs in the larger pool (default 100)")
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--bootenv", default="bootenv", help="the command (default: bootenv on PATH)")
    args = ap.parse_args()
    bootenv = shlex.split(args.bootenv)
    running = sh(["findmnt", "-n", "-o", "SOURCE", "/"]).strip()
    root = running.rsplit("/", 1)[0]
    small_n = count_bes(root)
    times: dict[str, list[float]] = {"create 1": [], "update-grub 1": [], "create N": [], "update-grub N": []}
    big_n = small_n
    for _ in range(args.tries):
        times["create 1"].append(timed_create(bootenv))
        times["update-grub 1"].append(timed(["update-grub"]))
        made = fan_out(root, running, args.bes - small_n)
        try:
            big_n = count_bes(root)
            times["create N"].append(timed_create(bootenv))
            times["update-grub N"].append(timed(["update-grub"]))
        finally:
            fan_in(made)
    sh(["update-grub"])  # the menu as it was
    med = {k: statistics.median(v) for k, v in times.items()}
    small = {"create": med["create 1"], "update-grub": med["update-grub 1"]}
    big = {"create": med["create N"], "update-grub": med["update-grub N"]}
    print(f"create_real: {root}, GRUB driver, median of {args.tries} interleaved tries, ms")
    for k, v in times.items():
        print(f"  {k}: " + ", ".join(f"{t * 1000:.0f}" for t in v))
    print(f"{'command':<12}{f'{small_n} BEs':>12}{f'{big_n} BEs':>12}{'ratio':>8}")
    for label in ("create", "update-grub"):
        print(f"{label:<12}{small[label] * 1000:>12.0f}{big[label] * 1000:>12.0f}{big[label] / small[label]:>7.2f}x")
    print(f"create: {big['create'] / small['create']:.2f}x at {big_n} BEs of its time at {small_n} (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
