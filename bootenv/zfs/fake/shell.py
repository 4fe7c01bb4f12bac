"""`python -m bootenv.zfs.fake`: drive a fake ZFS state file from a shell,
for scripted scenarios (with `BOOTENV_ZFS=fake:STATE` for bootenv itself).

  init STATE --root rpool/ROOT/debian [--deep var ...] [--shared rpool/home ...] [--data-mib N]
  reboot STATE          the pool's bootfs becomes the root mounted at /; prints it
  list STATE [DATASET]  like `zfs list -o name,used,refer,origin,mountpoint -t all`
  write STATE FS MIB    add MIB MiB of new data to FS
  delete STATE FS MIB   drop MIB MiB of data from FS's head
  fail STATE OP ERROR [MESSAGE]
                        the next call of OP (list, clone, ...) raises ERROR, a
                        ZfsError class of bootenv.zfs.base (PermissionDenied, ...)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..base import ZfsError
from .build import root_on_zfs
from .core import FakeZfs, MiB


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" or value >= 100 else f"{value:.1f}{unit}"
        value /= 1024
    return str(n)


def init(state: Path, root: str, deep: list[str], shared: list[str], data_mib: int, *, force: bool) -> FakeZfs:
    """`init`: build a root-on-ZFS system (root_on_zfs) into a state file."""
    if state.exists() and not force:
        raise SystemExit(f"{state} exists (use --force to replace it)")
    try:
        z = root_on_zfs(FakeZfs(), root, deep=deep, shared=shared, data_mib=data_mib)
    except ValueError as exc:
        raise SystemExit(f"--root: {exc}") from None
    z.save(state)
    return z


def listing(z: FakeZfs, root: str | None) -> str:
    rows = [("NAME", "USED", "REFER", "ORIGIN", "MOUNTPOINT")]
    tops = [root] if root else sorted(p for p in z._pools)
    for top in tops:
        for d in sorted(z.list(top, snapshots=True), key=lambda d: d.name):
            rows.append(
                (
                    d.name,
                    _human(d.number("used")),
                    _human(d.number("referenced")),
                    d.props.get("origin", "-"),
                    d.props.get("mountpoint", "-"),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bootenv.zfs.fake", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init", help="create a root-on-ZFS state file")
    p.add_argument("state", type=Path)
    p.add_argument("--root", default="rpool/ROOT/debian", help="the running BE (default rpool/ROOT/debian)")
    p.add_argument("--deep", action="append", default=[], metavar="SUBDIR", help="add ROOT/SUBDIR (a deep BE)")
    p.add_argument("--shared", action="append", default=[], metavar="DATASET", help="a dataset outside the BE root")
    p.add_argument("--data-mib", type=int, default=64, help="data in the running BE (MiB, default 64)")
    p.add_argument("--force", action="store_true", help="replace an existing state file")
    p = sub.add_parser("reboot", help="boot the pool's bootfs")
    p.add_argument("state", type=Path)
    p.add_argument("--pool", default=None)
    p = sub.add_parser("list", help="zfs list -t all")
    p.add_argument("state", type=Path)
    p.add_argument("dataset", nargs="?")
    for cmd in ("write", "delete"):
        p = sub.add_parser(cmd, help=f"{cmd} data")
        p.add_argument("state", type=Path)
        p.add_argument("fs")
        p.add_argument("mib", type=float)
    p = sub.add_parser("fail", help="make the next call of an operation fail")
    p.add_argument("state", type=Path)
    p.add_argument("op")
    p.add_argument("error", help="a ZfsError class of bootenv.zfs.base, e.g. PermissionDenied")
    p.add_argument("message", nargs="?", default="injected fault")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "init":
            init(args.state, args.root, args.deep, args.shared, args.data_mib, force=args.force)
            return 0
        if not args.state.exists():
            print(f"no fake ZFS state at {args.state}", file=sys.stderr)
            return 1
        with FakeZfs.session(args.state) as z:
            if args.cmd == "reboot":
                pool = args.pool or _only_pool(z)
                print(z.reboot(pool))
            elif args.cmd == "list":
                print(listing(z, args.dataset))
            elif args.cmd == "write":
                z.write(args.fs, int(args.mib * MiB))
            elif args.cmd == "delete":
                z.delete(args.fs, int(args.mib * MiB))
            elif args.cmd == "fail":
                z.fail_next(args.op, _fault(args.error, args.message))
    except ZfsError as exc:
        print(f"fake zfs: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # fail: no such operation
        print(f"fake zfs: {exc}", file=sys.stderr)
        return 2
    return 0


def _fault(kind: str, message: str) -> ZfsError:
    from .. import base

    cls = getattr(base, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, ZfsError)):
        raise SystemExit(f"{kind!r} is not a ZfsError class of bootenv.zfs.base")
    return cls(message)


def _only_pool(z: FakeZfs) -> str:
    pools = sorted(z._pools)
    if len(pools) != 1:
        raise SystemExit(f"several pools ({', '.join(pools)}): use --pool")
    return pools[0]
