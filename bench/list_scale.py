#!/usr/bin/env python3
"""How `bootenv list` scales, on the fake ZFS (host, no root needed).

Builds a pool with N BEs (every other one a clone) of S snapshots each and
prints, side by side in one run:
  - the backend's raw one-call listing of the BE root (what `zfs list -r`
    would return) vs Engine.list() on top of it: per-BE cost and the ratio;
  - `bootenv list` as a whole process against the same pool in a state file
    (includes loading the JSON state, which only the fake pays);
  - start-up: `bootenv --version` vs a bare `python -c pass`, and which
    heavy modules a `--version` run imports (must not be pyzfs or apt).

Usage: bench/list_scale.py [--bes 1000] [--snapshots 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bootenv.engine import Engine  # noqa: E402
from bootenv.model import USER_PROPS  # noqa: E402
from bootenv.zfs.fake import MiB, FakeZfs  # noqa: E402
from bootenv.zfs.fake.build import root_on_zfs  # noqa: E402


def build(bes: int, snaps: int) -> FakeZfs:
    zfs = root_on_zfs(FakeZfs())
    for i in range(1, bes):
        name = f"rpool/ROOT/be{i:04d}"
        if i % 2:
            zfs.snapshot([f"rpool/ROOT/debian@be{i:04d}"], {"org.bootenv:snapshot": "yes"})
            zfs.clone(f"rpool/ROOT/debian@be{i:04d}", name, {"canmount": "noauto", "org.bootenv:title": f"checkpoint {i}"})
        else:
            zfs.create(name, {"canmount": "noauto", "mountpoint": "/"})
        zfs.write(name, 1 * MiB)
        for j in range(snaps):
            zfs.snapshot([f"{name}@s{j:02d}"])
    return zfs


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def process_time(argv: list[str], env: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bes", type=int, default=1000)
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    zfs = build(args.bes, args.snapshots)
    total = len(zfs.list("rpool", snapshots=True))
    print(f"pool: {args.bes} BEs x {args.snapshots} snapshots = {total} datasets (built in {time.perf_counter() - start:.1f} s)")

    engine = Engine(zfs)
    raw = best(lambda: zfs.list("rpool/ROOT", user_props=USER_PROPS), args.repeat)
    full = best(engine.list, args.repeat)
    assert len(engine.list()) == args.bes
    print(f"raw backend listing (filesystems): {raw * 1000:8.1f} ms  {raw / args.bes * 1e6:7.1f} us/BE")
    print(f"Engine.list():                     {full * 1000:8.1f} ms  {full / args.bes * 1e6:7.1f} us/BE  ratio {full / raw:.2f}x raw")
    snaps = best(lambda: zfs.list("rpool/ROOT", snapshots=True, user_props=USER_PROPS), args.repeat)
    print(f"raw listing with snapshots (destroy's view): {snaps * 1000:.1f} ms ({snaps / raw:.1f}x without; list never asks for them)")

    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "pool.json")
        zfs.save(state)
        env = dict(os.environ, BOOTENV_ZFS=f"fake:{state}", PYTHONPATH=os.getcwd())
        bare = process_time([python, "-c", "pass"], env, args.repeat)
        version = process_time([python, "-m", "bootenv", "--version"], env, args.repeat)
        listing = process_time([python, "-m", "bootenv", "list"], env, args.repeat)
        load = best(lambda: FakeZfs.load(state), 3)
    print(f"python -c pass:        {bare * 1000:7.1f} ms")
    print(f"bootenv --version:     {version * 1000:7.1f} ms  (+{(version - bare) * 1000:.1f} ms over bare python, {version / bare:.2f}x)")
    print(f"bootenv list process:  {listing * 1000:7.1f} ms  (of which loading the fake's JSON state: {load * 1000:.1f} ms)")

    probe = "import sys, bootenv.cli; bootenv_mods = set(sys.modules); print(' '.join(m for m in ('apt_pkg', 'apt', 'libzfs_core', 'tabulate', 'bootenv.engine', 'bootenv.zfs.fake') if m in bootenv_mods))"
    heavy = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=env).stdout.strip()
    print(f"heavy modules imported by CLI start-up: {heavy or 'none'}")


if __name__ == "__main__":
    main()
