#!/usr/bin/env python3
"""bootenv's own overhead on top of apt, for an upgrade of N packages.

Runs the real orchestration (upgrade.Upgrader: plan, space check,
checkpoint or clone, metadata, chroot set-up and tear-down, state marks)
around a fake apt that takes a known time, and prints, per N and mode:
total time, time inside apt, and the difference: what bootenv adds.

On the host (default) the pool is the in-memory fake ZFS and the sandbox
binds nothing (there is nothing real to bind into a fake mount), so the
figures are bootenv's Python cost. In the guest, point it at real ZFS and
the sandbox does real mounts, binds and umounts:

    bench/apt_overhead.py                          # host: fake ZFS
    bench/apt_overhead.py --zfs auto               # guest: the running root-on-ZFS system
    bench/apt_overhead.py --zfs auto --be-root rpool/ROOT --running rpool/ROOT/debian

Every BE the benchmark makes is destroyed again (outside the timing).

Usage: bench/apt_overhead.py [--packages 1,10,100,1000] [--apt-seconds 0.2]
                             [--mode in-place,sandbox] [--repeat 5] [--zfs SPEC]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bootenv.apt.fake import FakePackages, fake_plan  # noqa: E402
from bootenv.apt.model import AptRequest  # noqa: E402
from bootenv.upgrade.chroot import Chroot  # noqa: E402
from bootenv.engine import Engine  # noqa: E402
from bootenv.upgrade.upgrader import IN_PLACE, SANDBOX, Upgrader  # noqa: E402


def fake_engine(tmpdir: str) -> Engine:
    from bootenv.zfs.fake import FakeZfs
    from bootenv.zfs.fake.build import root_on_zfs

    zfs = root_on_zfs(FakeZfs(), data_mib=1024)
    return Engine(zfs, mount_base=tmpdir)


def real_engine(spec: str, be_root: str | None, running: str | None) -> Engine:
    from bootenv.boot.factory import open_bootloader
    from bootenv.zfs.factory import open_backend

    return Engine(open_backend(spec), open_bootloader(os.environ.get("BOOTENV_BOOTLOADER")), be_root=be_root, running=running)


def measure(engine: Engine, mode: str, n: int, apt_seconds: float, fake: bool) -> tuple[float, float]:
    """One checkpointed upgrade of n packages: (total seconds, seconds in apt)."""
    names = [f"pkg{i:05d}" for i in range(n)]
    packages = FakePackages(lambda req: fake_plan(req, upgrade=names, write=0), seconds=apt_seconds)
    chroot = (lambda eng, name: Chroot(eng, name, binds=())) if fake else Chroot
    upgrader = Upgrader(engine, packages, chroot=chroot)
    start = time.perf_counter()
    prepared = upgrader.prepare(AptRequest("dist-upgrade"), mode=mode, update=False, command="bench")
    outcome = upgrader.execute(prepared)
    total = time.perf_counter() - start
    assert outcome.ok, outcome
    engine.plan_destroy(outcome.be).execute()  # not timed
    return total, outcome.apt_seconds


def planning_seconds(n: int, tmp: str, repeat: int) -> float | None:
    """python-apt planning of a dist-upgrade of n packages against a fake
    apt root (n installed at 1.0, a file: repository with 2.0): work
    bootenv does before apt (apt-get then plans again). None without
    python-apt or apt-get."""
    try:
        import apt_pkg  # noqa: F401
    except ImportError:
        return None
    from pathlib import Path

    from bootenv.apt.packages import AptPackages
    from tests.debs import Deb, FakeAptRoot

    base = Path(tmp) / f"plan-{n}"
    repo = base / "repo"
    repo.mkdir(parents=True)
    stanzas = []
    for i in range(n):  # an index is all planning reads: no .deb files needed
        stanzas.append(
            f"Package: pkg{i:05d}\nVersion: 2.0\nArchitecture: all\nInstalled-Size: 10\n"
            f"Filename: ./pkg{i:05d}_2.0_all.deb\nSize: 1000\nDescription: bench\n"
        )
    (repo / "Packages").write_text("\n".join(stanzas))
    root = FakeAptRoot.create(base / "root", repo, installed=[Deb(f"pkg{i:05d}", "1.0") for i in range(n)])
    packages = AptPackages(root=str(root.path), config=root.config, apt_config=str(root.apt_config), echo=lambda line: None)
    packages.update()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        plan = packages.plan(AptRequest("dist-upgrade"))
        times.append(time.perf_counter() - start)
        assert len(plan.changes) == n
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", default="1,10,100,1000", help="comma-separated N (packages upgraded)")
    parser.add_argument("--apt-seconds", type=float, default=0.2, help="time the fake apt takes")
    parser.add_argument("--mode", default="in-place,sandbox")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--zfs", default=None, help="ZFS backend spec (default: in-memory fake)")
    parser.add_argument("--be-root", default=None)
    parser.add_argument("--running", default=None)
    parser.add_argument("--plan", action="store_true", help="also time python-apt planning (always on the fake)")
    args = parser.parse_args(argv)

    import tempfile

    fake = args.zfs is None
    tmp = tempfile.mkdtemp(prefix="bootenv-bench-")
    engine = fake_engine(tmp) if fake else real_engine(args.zfs, args.be_root, args.running)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    for m in modes:
        if m not in (IN_PLACE, SANDBOX):
            parser.error(f"unknown mode {m}")
    where = "fake ZFS (in memory), sandbox without binds" if fake else f"ZFS backend {args.zfs}, BE root {engine.be_root}"
    print(f"bootenv overhead on top of apt: {where}; fake apt takes {args.apt_seconds:.3f} s; best and median of {args.repeat}")
    print(f"{'mode':<9} {'N':>6} {'total s':>9} {'apt s':>8} {'bootenv s':>10} {'median s':>9}")
    for mode in modes:
        for n in (int(x) for x in args.packages.split(",")):
            overheads = []
            best_total = best_apt = None
            for _ in range(args.repeat):
                total, apt = measure(engine, mode, n, args.apt_seconds, fake)
                overheads.append(total - apt)
                if best_total is None or total - apt < best_total - best_apt:
                    best_total, best_apt = total, apt
            print(
                f"{mode:<9} {n:>6} {best_total:>9.3f} {best_apt:>8.3f} {min(overheads):>10.4f} "
                f"{statistics.median(overheads):>9.4f}"
            )
    if fake or args.plan:
        print()
        print("python-apt planning of a dist-upgrade (fake apt root, file: repository), best of", args.repeat)
        print(f"{'N':>6} {'plan s':>9}")
        for n in (int(x) for x in args.packages.split(",")):
            seconds = planning_seconds(n, tmp, args.repeat)
            print(f"{n:>6} {'n/a (no python-apt)' if seconds is None else f'{seconds:9.3f}'}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
