#!/usr/bin/env python3
"""`bootenv create` at 100 BEs against its time at 1 BE, on a booted
root-on-ZFS system with its real bootloader (the GRUB driver: update-grub,
42_bootenv reading org.bootenv:kernels): issue 16's "a checkpoint whose
cost does not grow with the number of BEs".

Side by side in one run, median of TRIES (ms), each create destroyed again
(untimed) before the next:

    create       bootenv create benchck          (the whole process)
    update-grub  update-grub alone               (what create's menu update costs)

first with the running BE alone (1 BE), then with FANOUT more BEs (100 in
all): one `bootenv create seed`, then its snapshot cloned in process
(libzfs_core) FANOUT-1 times with seed's org.bootenv: properties (its
kernels record too, as bootenv writes it: 42_bootenv trusts it and mounts
nothing), so building them costs no update-grub each. Prints the ratio
100 BEs / 1 BE of each row. Destroys what it made.

Runs as root on the booted disk (tests/vm/boot: BOOTENV_VM_ONLY=bench_create
tests/vm/boots.py run grub), with the running system's bootenv:

    python3 bench/create_real.py [--tries 3] [--bes 100]
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import sys
import time


def sh(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"create_real: {shlex.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    sh(argv)
    return time.perf_counter() - start


def be_root() -> str:
    root = sh(["findmnt", "-n", "-o", "SOURCE", "/"]).strip()
    return root.rsplit("/", 1)[0]


def count_bes(root: str) -> int:
    return len(sh(["zfs", "list", "-H", "-d", "1", "-t", "filesystem", "-o", "name", root]).split()) - 1


def measure(bootenv: list[str], tries: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"create": [], "update-grub": []}
    for _ in range(tries):  # interleaved: drift in the guest hits both alike
        times["create"].append(timed([*bootenv, "create", "benchck"]))
        sh([*bootenv, "destroy", "-y", "benchck"])
        times["update-grub"].append(timed(["update-grub"]))
    return {k: statistics.median(v) for k, v in times.items()}


def fan_out(bootenv: list[str], root: str, count: int) -> list[str]:
    """`bootenv create seed`, then count-1 clones of seed@fan made in
    process with seed's properties (generations of their own). Return the
    clones' datasets (seed last)."""
    import libzfs_core as lzc

    sh([*bootenv, "create", "seed"])
    seed = f"{root}/seed"
    props = {}
    for line in sh(["zfs", "get", "-H", "-p", "-o", "property,value", "-s", "local", "all", seed]).splitlines():
        prop, _, value = line.partition("\t")
        if prop.startswith("org.bootenv:") or prop in ("canmount", "mountpoint"):
            props[prop] = value
    lzc.lzc_snapshot([f"{seed}@fan".encode()])
    referenced = sh(["zfs", "get", "-H", "-p", "-o", "value", "referenced", f"{seed}@fan"]).strip()
    gen = int(props.get("org.bootenv:generation", "1"))
    made = []
    for i in range(1, count):
        mine = dict(props, **{"org.bootenv:generation": str(gen + i), "org.bootenv:title": f"fan-out {i}"})
        if "org.bootenv:kernels" in mine:  # a clone's referenced is its origin's: the record holds
            mine["org.bootenv:kernels"] = re.sub(r"^ref=\d+", f"ref={referenced}", mine["org.bootenv:kernels"])
        # canmount is a number to libzfs_core (0 off, 1 on, 2 noauto)
        encoded = {k.encode(): ({"off": 0, "on": 1, "noauto": 2}[v] if k == "canmount" else v.encode()) for k, v in mine.items()}
        name = f"{root}/fan{i:03d}"
        lzc.lzc_clone(name.encode(), f"{seed}@fan".encode(), encoded)
        made.append(name)
    sh(["zfs", "set", f"org.bootenv:next-generation={gen + count}", root])
    return made + [seed]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bes", type=int, default=100, help="BEs in the larger pool (default 100)")
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--bootenv", default="bootenv", help="the command (default: bootenv on PATH)")
    args = ap.parse_args()
    bootenv = shlex.split(args.bootenv)
    root = be_root()
    small_n = count_bes(root)
    small = measure(bootenv, args.tries)
    made = fan_out(bootenv, root, args.bes - small_n)
    try:
        big_n = count_bes(root)
        big = measure(bootenv, args.tries)
    finally:
        import libzfs_core as lzc

        for name in made[:-1]:
            lzc.lzc_destroy(name.encode())
        sh([*bootenv, "destroy", "-y", "seed"])
    print(f"create_real: {root}, GRUB driver, median of {args.tries} tries, ms")
    print(f"{'command':<12}{f'{small_n} BEs':>12}{f'{big_n} BEs':>12}{'ratio':>8}")
    for label in ("create", "update-grub"):
        print(f"{label:<12}{small[label] * 1000:>12.0f}{big[label] * 1000:>12.0f}{big[label] / small[label]:>7.2f}x")
    print(f"create: {big['create'] / small['create']:.2f}x at {big_n} BEs of its time at {small_n} (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
