#!/usr/bin/env python3
"""`bootenv prune -n` at scale on the fake ZFS: N automatic checkpoints
(kind hook, each with a little data of its own and its origin snapshot
holding some), the default policy (keep the newest 10). Prints the wall
time of planning the prune with its reclaim figures (what `prune -n`
does), and the ZFS backend calls it made by method: it must stay one
listing plus one space query per pool (plus the fixed reads: bootfs, the
BE root's trial/last-good properties, pool size/free), never one call per
BE. Hold tags (`zfs holds`) are read only for snapshots the listing's
userrefs says are held.

Usage: bench/prune_scale.py [--bes 10,100,1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bootenv.engine import Engine  # noqa: E402
from bootenv.retention import Policy  # noqa: E402
from bootenv.zfs.fake import MiB, FakeZfs  # noqa: E402
from bootenv.zfs.fake.build import root_on_zfs  # noqa: E402


class Counting:
    """A backend proxy that counts the calls per method."""

    def __init__(self, inner):
        self._inner = inner
        self.calls: collections.Counter = collections.Counter()

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return call


def build(n: int) -> tuple[FakeZfs, Engine]:
    now = [1_800_000_000.0]

    def clock() -> float:
        now[0] += 60
        return now[0]

    zfs = FakeZfs(clock=clock)
    root_on_zfs(zfs, deep=[], shared=["home"], data_mib=64)
    engine = Engine(zfs, clock=clock)
    for i in range(n):
        zfs.write("rpool/ROOT/debian", MiB // 4)
        engine.plan_create(f"hook-{i:05}", kind="hook").execute()
        zfs.write(f"rpool/ROOT/hook-{i:05}", MiB // 8)
        zfs.delete("rpool/ROOT/debian", MiB // 8)
    return zfs, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'BEs':>6} {'prune -n (s)':>13} {'goes':>5} {'frees':>10}  backend calls")
    for n in (int(x) for x in args.bes.split(",")):
        zfs, _ = build(n)
        counting = Counting(zfs)
        engine = Engine(counting, clock=lambda: 1_900_000_000.0)
        times = []
        for _ in range(args.repeat):
            counting.calls.clear()
            start = time.perf_counter()
            plan = engine.plan_prune(Policy())
            times.append(time.perf_counter() - start)
        per, total = plan.reclaim or ({}, None)
        calls = dict(sorted(counting.calls.items()))
        frees = f"{(total or 0) / MiB:.1f}M" if total is not None or not plan.result.destroyed else "?"
        print(f"{n:>6} {statistics.median(times):>13.3f} {len(plan.result.destroyed):>5} {frees:>10}  {calls}")
        assert calls.get("list") == 1 and calls.get("destroy_preview", 0) <= 1 and "holds" not in calls, calls


if __name__ == "__main__":
    main()
