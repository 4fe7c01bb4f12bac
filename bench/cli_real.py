#!/usr/bin/env python3
"""`bootenv` as a whole process against the one `zfs list` it needs.

Side by side in one run, for pools of 10 and 100 BEs (10 snapshots each),
the median of TRIES interleaved runs (ms) of:

    raw          zfs list -H -p -r -t filesystem -o name,used,creation,origin,
                 mountpoint,canmount,org.bootenv:title ROOT
    list         bootenv list
    list -H      bootenv list -H
    list --json  bootenv list --json
    status       bootenv status
    status typer bootenv --be-root ROOT status (a global option: the whole typer
                 command line, as every status was before its fast path)
    --version    bootenv --version
    python       python3 -c pass (the interpreter bootenv runs on)
    create       bootenv create (then destroyed, untimed), with --create

after one untimed warm-up run of each (byte-code compiled and cached
under a private PYTHONPYCACHEPREFIX, as an installed bootenv has it),
and the ratios: each command to raw, --version to python, and the per-BE
slope from the smaller pool to the larger of raw and of `bootenv list`.

In the QEMU guest (real OpenZFS, root):

    tests/vm/harness.py run --pool -- python3 bench/cli_real.py

builds POOL/bench-cli/ROOT with the BEs (lzc_create, unmounted) on
BOOTENV_TEST_POOL (default betest) and runs bootenv with BOOTENV_BE_ROOT
and BOOTENV_RUNNING pointing at it. On the host, `--fake` does the same
against the fake backend (raw is then the fake's own listing process,
`python -m bootenv.zfs.fake list`; `make bench` runs it).

Options: --bes 10,100  --snapshots 10  --tries 5  --create.
Environment: BOOTENV_CMD (default: this interpreter -m bootenv, this tree
on PYTHONPATH), BOOTENV_TEST_POOL.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
sys.path.insert(0, TREE)

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
RAW_COLUMNS = "name,used,creation,origin,mountpoint,canmount,org.bootenv:title"
READS = ("raw", "list", "list -H", "list --json", "status", "status typer", "--version", "python")


# ------------------------------------------------------------ pools


def build_real(root: str, bes: int, snaps: int) -> None:
    """ROOT's parent and ROOT, then BEs be0..be{N-1} under ROOT (canmount=
    noauto, a title each) with `snaps` snapshots each: in-process
    (libzfs_core), one atomic snapshot call per round."""
    import libzfs_core as lzc

    top = root.rsplit("/", 1)[0]
    subprocess.run(["zfs", "destroy", "-r", top], capture_output=True)
    lzc.lzc_create(top.encode(), props={b"canmount": 0})
    lzc.lzc_create(root.encode(), props={b"canmount": 0})
    for i in range(bes):
        props = {b"canmount": 2, b"mountpoint": b"/", b"org.bootenv:title": f"checkpoint {i}".encode()}
        lzc.lzc_create(f"{root}/be{i}".encode(), props=props)
    for j in range(snaps):
        lzc.lzc_snapshot([f"{root}/be{i}@s{j:02d}".encode() for i in range(bes)])


def destroy_real(root: str) -> None:
    subprocess.run(["zfs", "destroy", "-r", root.rsplit("/", 1)[0]], capture_output=True)


def build_fake(state: str, bes: int, snaps: int) -> None:
    from bootenv.zfs.fake import MiB, FakeZfs
    from bootenv.zfs.fake.build import root_on_zfs

    zfs = root_on_zfs(FakeZfs(), "rpool/ROOT/be0")
    for i in range(1, bes):
        zfs.create(f"rpool/ROOT/be{i}", {"canmount": "noauto", "mountpoint": "/", "org.bootenv:title": f"checkpoint {i}"})
        zfs.write(f"rpool/ROOT/be{i}", 1 * MiB)
    for j in range(snaps):
        for i in range(bes):
            zfs.snapshot([f"rpool/ROOT/be{i}@s{j:02d}"])
    zfs.save(state)


# ------------------------------------------------------------ timing


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"cli_real: {shlex.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return took


def measure(commands: dict[str, list[str]], env: dict, tries: int, create: list[str] | None, destroy: list[str] | None) -> dict[str, float]:
    """Median seconds per command, the commands interleaved try by try (so
    drift in the guest hits them all alike)."""
    for argv in commands.values():  # warm-up: byte-compiled, caches filled, as an installed bootenv
        timed(argv, env)
    times: dict[str, list[float]] = {k: [] for k in commands}
    if create:
        times["create"] = []
    for _ in range(tries):
        for label, argv in commands.items():
            times[label].append(timed(argv, env))
        if create and destroy:
            times["create"].append(timed(create, env))
            timed(destroy, env)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fake", action="store_true", help="the fake backend on the host (no ZFS, no root)")
    ap.add_argument("--bes", default="10,100", help="pool sizes, comma-separated (default 10,100)")
    ap.add_argument("--snapshots", type=int, default=10)
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--create", action="store_true", help="also time `bootenv create` (destroyed again, untimed)")
    args = ap.parse_args()
    sizes = [int(n) for n in args.bes.split(",") if n]

    python = sys.executable
    bootenv = shlex.split(os.environ["BOOTENV_CMD"]) if os.environ.get("BOOTENV_CMD") else [python, "-m", "bootenv"]
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Byte-code cached in a place of our own (the guest's tree is read
        # only, with PYTHONDONTWRITEBYTECODE): a packaged bootenv has its .pyc.
        base_env = dict(os.environ, PYTHONPATH=TREE + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
                        PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        for count in sizes:
            if args.fake:
                state = os.path.join(tmp, f"pool{count}.json")
                build_fake(state, count, args.snapshots)
                env = dict(base_env, BOOTENV_ZFS=f"fake:{state}")
                raw = [python, "-m", "bootenv.zfs.fake", "list", state, "rpool/ROOT"]
                be_root = "rpool/ROOT"
            else:
                root = be_root = f"{POOL}/bench-cli/ROOT"
                build_real(root, count, args.snapshots)
                env = dict(base_env, BOOTENV_BE_ROOT=root, BOOTENV_RUNNING=f"{root}/be0")
                raw = ["zfs", "list", "-H", "-p", "-r", "-t", "filesystem", "-o", RAW_COLUMNS, root]
            commands = {
                "raw": raw,
                "list": [*bootenv, "list"],
                "list -H": [*bootenv, "list", "-H"],
                "list --json": [*bootenv, "list", "--json"],
                "status": [*bootenv, "status"],
                "status typer": [*bootenv, "--be-root", be_root, "status"],
                "--version": [*bootenv, "--version"],
                "python": [python, "-c", "pass"],
            }
            create = [*bootenv, "create", "benchck"] if args.create else None
            destroy = [*bootenv, "destroy", "-y", "benchck"] if args.create else None
            try:
                results[count] = measure(commands, env, args.tries, create, destroy)
                # as it goes: a guest that times out later still leaves these in its log
                print(f"cli_real: {count} BEs: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in results[count].items()), flush=True)
            finally:
                if not args.fake:
                    destroy_real(root)

    where = "fake backend (host)" if args.fake else "real ZFS"
    print(f"cli_real: {where}, {args.snapshots} snapshots per BE, median of {args.tries} interleaved tries, ms")
    labels = [*READS, *(["create"] if args.create else [])]
    print(f"{'command':<13}" + "".join(f"{f'{n} BEs':>12}{'ratio':>8}" for n in sizes))
    for label in labels:
        line = f"{label:<13}"
        for n in sizes:
            t = results[n][label]
            ref = results[n]["python"] if label == "--version" else results[n]["raw"]
            ratio = "" if label in ("raw", "python", "create") else f"{t / ref:.2f}x"
            line += f"{t * 1000:>12.0f}{ratio:>8}"
        print(line)
    print("ratios: to raw; --version to python")
    for n in sizes:
        r = results[n]
        print(f"{n} BEs: list {r['list'] / r['raw']:.2f}x raw, --version {r['--version'] / r['python']:.2f}x python -c pass")
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        per = lambda label: (results[hi][label] - results[lo][label]) / (hi - lo) * 1000  # noqa: E731
        print(f"per-BE slope {lo} -> {hi} BEs: raw {per('raw'):.2f} ms/BE, bootenv list {per('list'):.2f} ms/BE")
        if args.create:
            print(f"create: {results[hi]['create'] / results[lo]['create']:.2f}x at {hi} BEs of its time at {lo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
