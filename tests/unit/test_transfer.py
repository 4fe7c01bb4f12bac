"""send/receive logic on two fake pools (a build host and a target),
with a runner that plays the zfs commands the fake has not: `zfs send`
writes one JSON line per dataset (its snapshot's guid, data, properties),
`zfs receive` reads exactly one line and makes the dataset. What is real
here: the header, base matching by guid, refusals, holds, finish."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bootenv.boot.recording import RecordingBootloader
from bootenv.engine import Engine
from bootenv.errors import BeExists, OperationFailed, Refused, UsageError
from bootenv.model import PROP_SENT, PROP_TITLE
from bootenv.repair import repair
from bootenv.transfer import HOLD_TAG, Header, Transfer, read_header
from bootenv.zfs.fake import FakeZfs
from bootenv.zfs.fake.build import root_on_zfs

from .conftest import Clock


class PlayedZfs:
    """A Runner for one fake pool: the zfs commands transfer.py runs."""

    dry_run = False

    def __init__(self, fake: FakeZfs, salt: str, *, cut_after: int | None = None):
        self.fake = fake
        self.salt = salt  # guids differ between machines
        self.received: dict[str, str] = {}  # fake id -> the sender's guid (ZFS keeps a snapshot's guid)
        self.bookmarks: dict[str, str] = {}  # fs#name -> guid
        self.calls: list[list[str]] = []
        self.cut_after = cut_after  # receive: fail the Nth stream (interrupted)

    def _guid(self, name: str) -> str:
        if name in self.bookmarks:
            return self.bookmarks[name]
        own = self.fake.get_props(name, ["guid"])["guid"]
        return self.received.get(own, self.salt + own)

    def run(self, argv, *, mutating=False, check=True, **_):
        self.calls.append(list(argv))
        out, rc = "", 0
        args = argv[1:]
        if args[:1] == ["get"] and args[-2] == "guid":
            out = self._guid(args[-1]) + "\n"
        elif args[:1] == ["list"] and "bookmark" in args[args.index("-t") + 1]:
            if args[-1] in self.bookmarks:
                out = args[-1] + "\n"
            elif "-d" in args:
                ds = args[-1]
                rows = [(d.name, self._guid(d.name)) for d in self.fake.list(ds, snapshots=True) if d.filesystem == ds and d.is_snapshot]
                rows += [(b, g) for b, g in self.bookmarks.items() if b.startswith(ds + "#")]
                out = "".join(f"{n}\t{g}\n" for n, g in rows)
            else:
                rc = 1
        elif args[:1] == ["list"] and "name,guid" in args:
            out = "".join(f"{d.name}\t{self._guid(d.name)}\n" for d in self.fake.list(args[-1], snapshots=True) if d.is_snapshot)
        elif args[:1] == ["list"] and "name,receive_resume_token" in args:
            out = "".join(f"{d.name}\t-\n" for d in self.fake.list(args[-1]))
        elif args[:1] == ["get"] and "all" in args:
            ds = args[-1]
            got = self.fake.get_props(ds, [PROP_TITLE, "org.bootenv:kind", "mountpoint"])
            out = "".join(f"{k}\t{v}\n" for k, v in got.items())
        elif args[:1] == ["bookmark"]:
            self.bookmarks[args[2]] = self._guid(args[1])
        elif args[:1] == ["send"] and "-n" in args:
            out = f"full\t{args[-1]}\t123\nsize\t{int(self.fake.get_props(args[-1], ['referenced'])['referenced'])}\n"
        else:
            raise AssertionError(f"unexpected {argv}")
        if check and rc:
            from bootenv.run import CommandFailed

            raise CommandFailed(argv, rc, out, "no such")
        return subprocess.CompletedProcess(argv, rc, out, "")

    def stream(self, argv, *, stdin=None, stdout=None, on_stderr=None, mutating=True):
        self.calls.append(list(argv))
        args = argv[1:]
        if args[0] == "send":
            snap = args[-1]
            base = args[args.index("-i") + 1] if "-i" in args else None
            props = {k: v for k, v in self.fake.get_props(snap.split("@")[0], [PROP_TITLE, "org.bootenv:kind"]).items()} if "-p" in args else {}
            record = {"argv": args, "snap": snap, "guid": self._guid(snap), "from": self._guid(base) if base else None,
                      "refer": int(self.fake.get_props(snap, ["referenced"])["referenced"]), "props": props}
            os.write(stdout, (json.dumps(record) + "\n").encode())
            return 0, "full send of ... estimated size is 1M"
        assert args[0] == "receive"
        line = b""
        while not line.endswith(b"\n"):
            byte = os.read(stdin, 1)
            if not byte:
                return 1, "cannot receive: checksum mismatch or incomplete stream"
            line += byte
        if self.cut_after is not None:
            self.cut_after -= 1
            if self.cut_after < 0:
                return 1, "cannot receive new filesystem stream: checksum mismatch or incomplete stream.\nPartially received snapshot is saved."
        record = json.loads(line)
        target = args[-1]
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        if "origin" in opts:
            assert record["from"] is not None and "-p" not in record["argv"]  # a package never lands as a clone
            assert self._guid(opts["origin"]) == record["from"]  # what ZFS checks
            self.fake.clone(opts["origin"], target, {"canmount": opts.get("canmount", "on")})
        else:
            assert record["from"] is None
            self.fake.create(target, {"canmount": opts.get("canmount", "on"), **record["props"]})
            self.fake.write(target, max(record["refer"], 1))
        snap = f"{target}@{record['snap'].split('@')[1]}"
        self.fake.snapshot([snap])
        self.received[self.fake.get_props(snap, ["guid"])["guid"]] = record["guid"]
        return 0, ""


def machine(tmp_path, name: str, deep=False):
    clock = Clock()
    fake = FakeZfs(clock=clock, strict=True)
    root_on_zfs(fake, deep=["var"] if deep else [], shared=["home"], data_mib=8)
    engine = Engine(fake, RecordingBootloader(), clock=clock, mount_base=str(tmp_path / name / "mnt"))
    runner = PlayedZfs(fake, salt={"build": "1000", "target": "2000"}[name])
    return engine, runner, Transfer(engine, runner=runner)


def pipe_through(tmp_path, src: Transfer, plan, dst: Transfer, name=None):
    path = tmp_path / f"stream-{len(os.listdir(tmp_path))}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    src.prepare(plan)
    src.send(plan, fd)
    os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        got, header = dst.receive(fd, name)
    finally:
        os.close(fd)
    return dst.finish(got, header), path


def test_full_then_incremental_lands_as_new_bes_matched_by_guid(tmp_path):
    build, brun, src = machine(tmp_path, "build", deep=True)
    target, trun, dst = machine(tmp_path, "target", deep=True)
    build.plan_create("web", title="tested").execute()
    plan = src.plan_send("web")
    assert [s.kind for s in plan.header.streams] == ["full", "full"] and plan.estimate > 0
    be, _ = pipe_through(tmp_path, src, plan, dst)
    assert be.name == "web" and not be.mounted and target.zfs.get_props(be.dataset, ["canmount"])["canmount"] == "noauto"
    assert be.generation == 1  # the target's own count
    assert target.zfs.get_props(be.dataset, [PROP_TITLE])[PROP_TITLE] == "tested"
    assert ("post_create", "web") in target.bootloader.calls  # the boot menu has it
    first = plan.header.snap
    # the base is kept on both sides
    assert HOLD_TAG in build.zfs.holds(f"rpool/ROOT/web@{first}")
    assert HOLD_TAG in target.zfs.holds(f"rpool/ROOT/web@{first}")
    assert f"rpool/ROOT/web/var#{first}" in brun.bookmarks
    # build host moves on; incremental from the first send
    build.zfs.write("rpool/ROOT/web", 4096)
    build.clock.tick(60)
    plan2 = src.plan_send("web", base=first)
    assert plan2.take_snapshot and plan2.header.snap != first
    assert [s.kind for s in plan2.header.streams] == ["incr", "incr"]
    # rename the target's copy of the base: matching is by guid, not name
    target.zfs.rename(f"rpool/ROOT/web@{first}", "rpool/ROOT/web@renamed")
    be2, _ = pipe_through(tmp_path, src, plan2, dst, "web-2")
    assert be2.origin == "rpool/ROOT/web@renamed" and be2.title == "tested"  # properties via the header
    assert target.zfs.exists("rpool/ROOT/web-2/var")
    # the hold moved on to the new base, on both sides; the sender's old base keeps its bookmark
    second = plan2.header.snap
    for ds in ("rpool/ROOT/web", "rpool/ROOT/web/var"):
        assert HOLD_TAG not in build.zfs.holds(f"{ds}@{first}") and f"{ds}#{first}" in brun.bookmarks
        assert HOLD_TAG in build.zfs.holds(f"{ds}@{second}")
    assert HOLD_TAG not in target.zfs.holds("rpool/ROOT/web@renamed")
    assert HOLD_TAG in target.zfs.holds(f"rpool/ROOT/web-2@{second}")
    scan = build.scan(snapshots=True)
    assert "web" in build.held(scan)  # by the new base: prune still leaves the BE alone
    # the superseded base (unheld, nothing cloned from it) is no residue: sent whole
    assert build.zfs.get_props(f"rpool/ROOT/web@{first}", [PROP_SENT])[PROP_SENT]
    assert repair(build).found == [] and repair(target).found == []


def test_a_base_without_a_bookmark_keeps_its_hold(tmp_path):
    """A base whose bookmark is gone (destroyed by hand) stays held on the
    sender: it is what a machine without the increment still needs."""
    build, brun, src = machine(tmp_path, "build")
    target, _, dst = machine(tmp_path, "target")
    build.plan_create("web").execute()
    first = src.plan_send("web")
    pipe_through(tmp_path, src, first, dst)
    brun.bookmarks.pop(f"rpool/ROOT/web#{first.header.snap}")
    build.zfs.write("rpool/ROOT/web", 4096)
    build.clock.tick(60)
    plan = src.plan_send("web", base=first.header.snap)
    pipe_through(tmp_path, src, plan, dst, "web-2")
    assert HOLD_TAG in build.zfs.holds(f"rpool/ROOT/web@{first.header.snap}")
    assert HOLD_TAG not in target.zfs.holds(f"rpool/ROOT/web@{first.header.snap}")


def test_the_same_unwritten_be_reuses_its_snapshot(tmp_path):
    build, _, src = machine(tmp_path, "build")
    build.plan_create("web").execute()
    plan = src.plan_send("web")
    src.prepare(plan)
    again = src.plan_send("web")
    assert not again.take_snapshot and again.header.snap == plan.header.snap


def test_receive_refuses_what_exists_and_a_missing_base(tmp_path):
    build, _, src = machine(tmp_path, "build")
    target, _, dst = machine(tmp_path, "target")
    build.plan_create("web").execute()
    target.plan_create("web").execute()
    plan = src.plan_send("web")
    before = sorted(d.name for d in target.zfs.list("rpool", snapshots=True))
    with pytest.raises(BeExists):
        pipe_through(tmp_path, src, plan, dst)
    first = plan.header.snap
    build.zfs.write("rpool/ROOT/web", 4096)
    build.clock.tick(60)
    with pytest.raises(Refused, match="guid"):
        pipe_through(tmp_path, src, src.plan_send("web", base=first), dst, "other")
    assert sorted(d.name for d in target.zfs.list("rpool", snapshots=True)) == before


def test_an_interrupted_receive_says_how_to_resume(tmp_path):
    build, _, src = machine(tmp_path, "build", deep=True)
    target, trun, dst = machine(tmp_path, "target", deep=True)
    trun.cut_after = 1  # the second stream breaks
    build.plan_create("web").execute()
    with pytest.raises(OperationFailed, match="bootenv receive --resume"):
        pipe_through(tmp_path, src, src.plan_send("web"), dst)


def test_dry_run_takes_nothing_and_guesses(tmp_path):
    build, brun, src = machine(tmp_path, "build")
    before = sorted(d.name for d in build.zfs.list("rpool", snapshots=True))
    plan = src.plan_send("@running", dry_run=True)
    assert plan.take_snapshot and not plan.estimate_exact and plan.estimate > 0
    assert sorted(d.name for d in build.zfs.list("rpool", snapshots=True)) == before


def test_header_round_trip_and_garbage(tmp_path):
    h = Header("web", "send-1", False, [])
    from bootenv.transfer import Stream

    h.streams = [Stream("", "full"), Stream("/var", "incr", "123")]
    path = tmp_path / "h"
    path.write_bytes(h.line() + b"\x00zfs stream")
    fd = os.open(path, os.O_RDONLY)
    got = read_header(fd)
    assert os.read(fd, 100) == b"\x00zfs stream"  # nothing read ahead
    os.close(fd)
    assert (got.be, got.snap, [(s.rel, s.kind, s.base_guid) for s in got.streams]) == ("web", "send-1", [("", "full", None), ("/var", "incr", "123")])
    path.write_bytes(b"\x00\x01 not a header")
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(UsageError, match="not a bootenv stream"):
        read_header(fd)
    os.close(fd)


def test_prune_skips_a_be_whose_snapshot_is_held(tmp_path):

    build, _, src = machine(tmp_path, "build")
    build.plan_create("web").execute()
    plan = src.plan_send("web")
    src.prepare(plan)
    scan = build.scan(snapshots=True)
    assert "web" in build.held(scan) and "is held" in build.held(scan)["web"]
    with pytest.raises(Refused, match="bootenv-send keeps the base"):
        build.plan_destroy("web")


def test_a_newer_be_goes_as_an_increment_from_the_base_of_the_one_it_came_from(tmp_path):
    build, _, src = machine(tmp_path, "build")
    target, _, dst = machine(tmp_path, "target")
    build.plan_create("web").execute()
    first = src.plan_send("web")
    pipe_through(tmp_path, src, first, dst)
    build.plan_create("web2", source="web").execute()  # the next release, a clone of web
    build.zfs.write("rpool/ROOT/web2", 4096)
    plan = src.plan_send("web2", base=f"web@{first.header.snap}")
    assert [(s.kind, s.base) for s in plan.header.streams] == [("incr", f"rpool/ROOT/web@{first.header.snap}")]
    be, _ = pipe_through(tmp_path, src, plan, dst)
    assert be.name == "web2" and be.origin == f"rpool/ROOT/web@{first.header.snap}"
