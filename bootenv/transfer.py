"""Sending a BE to other machines and receiving one: ZFS streams through
the zfs command (the stream flows between zfs and the file or pipe, never
through Python's memory).

A bootenv stream is one header line, then one `zfs send -p` stream per
dataset of the BE, top first:

    BOOTENV-STREAM 1 be=NAME snap=SNAP raw=0 streams=.:full:-,/var:incr:GUID
    <zfs send stream of NAME@SNAP> <zfs send stream of NAME/var@SNAP> ...

Each stream is `full`, `incr` (incremental from the snapshot whose guid is
GUID: the receiver finds its own copy of that snapshot by guid, never by
name, and receives the increment as a new BE cloned from it) or `resume`
(the rest of an interrupted one, `zfs send -t TOKEN`). One stream per
dataset rather than `zfs send -R`: a replication stream also carries
every older snapshot of the BE (the sender's checkpoints, none of the
target's business), an incremental one cannot land as a clone (`receive
-o origin` is ignored for -R), and an interrupted -R cannot be resumed
past the dataset it stopped in (openzfs/zfs#9150). The header is also
what lets a pipe (`bootenv send X | ssh host bootenv receive`) carry the
base's guid. To feed the streams to plain `zfs receive`, drop the first
line (`tail -n +2`).

The sent snapshot is kept on the sender with a hold (`bootenv-send`) and
a bookmark of the same name: it is the base of the next incremental, and
prune skips (destroy refuses, saying why) a BE whose snapshot is held.
The hold moves on with each increment: once one went through, its base's
hold is released on both sides (the sender keeps the base's bookmark, so
a machine that has not had the increment can still get it), and only the
newest snapshot sent or received stays held.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional

from . import run as _run
from .errors import BeExists, BeNotFound, OperationFailed, Refused, UsageError
from .model import (
    PROP_GENERATION, PROP_NEXT_GENERATION, PROP_NS, PROP_SENT, PROP_SNAPSHOT, PROP_STATE, STATE_COMPLETE, STATE_PENDING,
    validate_be_name,
)
from .zfs.base import ZfsError

MAGIC = "BOOTENV-STREAM"
VERSION = "1"
HOLD_TAG = "bootenv-send"
PROP_RECEIVED = PROP_NS + "received"  # on a received BE: when (epoch seconds)
MAX_HEADER = 1 << 20  # the properties of an incremental travel in it (a manifest: ~20 KiB)


@dataclass
class Stream:
    rel: str  # "" for the BE's top, "/var" for BE/var
    kind: str  # full | incr | resume
    base_guid: Optional[str] = None  # incr: the guid of the base snapshot
    base: Optional[str] = None  # sender only: the base snapshot or bookmark
    token: Optional[str] = None  # sender only: resume token


@dataclass
class Header:
    be: str
    snap: str
    raw: bool
    streams: list[Stream] = field(default_factory=list)
    # rel -> local properties (org.bootenv:*, mountpoint): an incremental
    # stream goes without -p (a -p stream is a package, and a package is
    # never received as a clone: `receive -o origin=` is ignored for it,
    # measured on 2.3.2), so its properties come here and finish sets them.
    props: dict = field(default_factory=dict)

    def line(self) -> bytes:
        import base64
        import json

        parts = ",".join(f"{s.rel or '.'}:{s.kind}:{s.base_guid or '-'}" for s in self.streams)
        packed = base64.b64encode(json.dumps(self.props, sort_keys=True).encode()).decode() if self.props else "-"
        text = f"{MAGIC} {VERSION} be={self.be} snap={self.snap} raw={int(self.raw)} streams={parts} props={packed}\n"
        return text.encode("ascii")

    @classmethod
    def parse(cls, line: bytes) -> "Header":
        """Raise UsageError if `line` is not a bootenv stream header."""
        try:
            text = line.decode("ascii").rstrip("\n")
        except UnicodeDecodeError:
            text = ""
        words = text.split(" ")
        if len(words) < 2 or words[0] != MAGIC:
            raise UsageError("not a bootenv stream (it does not start with a BOOTENV-STREAM line: made by 'bootenv send'?)")
        if words[1] != VERSION:
            raise UsageError(f"bootenv stream version {words[1]} is not known here (want {VERSION})")
        fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        try:
            streams = []
            for item in fields["streams"].split(","):
                rel, kind, guid = item.split(":")
                if kind not in ("full", "incr", "resume") or (rel != "." and not rel.startswith("/")):
                    raise ValueError(item)
                streams.append(Stream("" if rel == "." else rel, kind, None if guid == "-" else guid))
            props = {}
            if fields.get("props", "-") != "-":
                import base64
                import json

                props = json.loads(base64.b64decode(fields["props"], validate=True))
                if not isinstance(props, dict):
                    raise ValueError("props")
            return cls(validate_be_name(fields["be"]), fields["snap"], fields.get("raw") == "1", streams, props)
        except (KeyError, ValueError, TypeError) as exc:
            raise UsageError(f"bootenv stream header is damaged: {exc}") from None


def read_header(fd: int) -> Header:
    """Read the header line from `fd` byte by byte (so what follows is left
    for zfs receive on the same descriptor, nothing read ahead)."""
    buf = bytearray()
    while len(buf) < MAX_HEADER:
        byte = os.read(fd, 1)
        if not byte:
            break
        buf += byte
        if byte == b"\n":
            return Header.parse(bytes(buf))
    if not buf:
        raise UsageError("the stream is empty (nothing was sent)")
    return Header.parse(bytes(buf))


# ------------------------------------------------------------------ send


@dataclass
class SendPlan:
    name: str
    datasets: list[str]  # the BE's datasets, top first
    snap: Optional[str]  # the snapshot name sent (None under -n when one would be taken)
    take_snapshot: bool
    header: Header
    estimate: int
    estimate_exact: bool
    notes: list[str] = field(default_factory=list)


class Transfer:
    """send and receive on one Engine. `runner` runs the zfs commands
    (default: the process-wide runner, where dry-run lives); `say` gets
    the lines for stderr."""

    def __init__(self, engine, *, runner: Optional[_run.Runner] = None, say: Callable[[str], None] = lambda line: None):
        self.engine = engine
        self.zfs = engine.zfs
        self._runner = runner
        self.say = say

    @property
    def runner(self) -> _run.Runner:
        return self._runner or _run.default_runner

    def _zfs(self, *args: str) -> str:
        try:
            return self.runner.run(["zfs", *args]).stdout
        except _run.CommandFailed as exc:
            raise OperationFailed(f"zfs {args[0]}: {(exc.stderr or exc.stdout).strip()}") from exc

    # -- the sent snapshot and the base

    def _reusable_snapshot(self, scan, datasets: list[str]) -> Optional[str]:
        """The newest snapshot bootenv took of the BE's top that every
        dataset has and none has been written since (sending it again
        sends what is there now, no new snapshot needed)."""
        for snap in reversed(scan.snapshots.get(datasets[0], [])):
            if snap.user(PROP_SNAPSHOT) != "yes":
                continue
            name = snap.snapname
            if all(f"{ds}@{name}" in scan.datasets for ds in datasets):
                try:
                    if all(self.zfs.written_since(f"{ds}@{name}", ds) == 0 for ds in datasets):
                        return name
                except ZfsError:
                    return None
            return None  # only the newest one can have nothing written since
        return None

    def _guid(self, name: str) -> str:
        value = self._zfs("get", "-H", "-p", "-o", "value", "guid", name).strip()
        if not value.isdigit():
            raise OperationFailed(f"no guid for {name}")
        return value

    def _base_of(self, scan, ds: str, base: str, rel: str = "") -> str:
        """The snapshot (or, once pruned, the bookmark) `base` names for
        `ds`: SNAP (of ds itself), OTHERBE@SNAP or OTHERBE#BOOKMARK (the
        same dataset of another BE: the BE ds was cloned from, as zfs send
        -i allows for a clone), or a guid."""
        for sep in ("@", "#"):
            if sep in base:
                other, _, snap = base.partition(sep)
                ds, base = self.engine.dataset_of(validate_be_name(other)) + rel, snap
                break
        if base.isdigit():
            found = self._find_by_guid(ds, base)
            if found:
                return found
            raise BeNotFound(f"no snapshot or bookmark of {ds} has guid {base}")
        for candidate in (f"{ds}@{base}", f"{ds}#{base}"):
            # snapshots from the scan (no libzfs_core import on a dry run)
            if candidate in scan.datasets if "@" in candidate else self._bookmark_exists(candidate):
                return candidate
        raise BeNotFound(f"--from {base}: {ds} has no snapshot or bookmark of that name")

    def _bookmark_exists(self, name: str) -> bool:
        try:
            self.runner.run(["zfs", "list", "-H", "-o", "name", "-t", "bookmark", name])
            return True
        except _run.CommandFailed:
            return False

    def _find_by_guid(self, ds: str, guid: str) -> Optional[str]:
        out = self._zfs("list", "-H", "-p", "-o", "name,guid", "-t", "snapshot,bookmark", "-d", "1", ds)
        for line in out.splitlines():
            name, _, g = line.partition("\t")
            if g.strip() == guid:
                return name
        return None

    def plan_send(self, selector: str, *, base: Optional[str] = None, raw: bool = False, dry_run: bool = False,
                  resume: Optional[str] = None) -> SendPlan:
        """Decide what a send sends. Raise BeNotFound, UsageError."""
        engine = self.engine
        scan = engine.scan(snapshots=True)
        name = engine.select(selector, scan)
        be = engine.get(name, scan)
        if be.state == "pending":
            raise Refused(f"{name} is not whole (state pending): nothing to send")
        datasets = scan.tree(be.dataset)
        if resume:
            return self._plan_resume(scan, name, datasets, resume, base, raw)
        snap = self._reusable_snapshot(scan, datasets)
        take = snap is None
        if take:
            snap = self._free_snapname(scan, datasets, datetime.fromtimestamp(engine.clock()).strftime("send-%Y%m%d-%H%M%S"))
        streams = []
        for ds in datasets:
            rel = ds[len(be.dataset):]
            if base is None:
                streams.append(Stream(rel, "full"))
                continue
            source = self._base_of(scan, ds, base, rel)
            streams.append(Stream(rel, "incr", self._guid(source), source))
        header = Header(name, snap, raw, streams, self._local_props(datasets, streams))
        plan = SendPlan(name, datasets, None if (take and dry_run) else snap, take, header, 0, False)
        # Exact (zfs send -nP) once the snapshot exists: prepare() redoes it.
        plan.estimate, plan.estimate_exact = self._estimate(plan, raw, take, scan)
        if take:
            plan.notes.append(f"snapshot {', '.join(f'{ds}@{snap}' for ds in datasets)}")
        return plan

    def _plan_resume(self, scan, name: str, datasets: list[str], token: str, base: Optional[str], raw: bool) -> SendPlan:
        """A resumed send: the rest of the dataset the token names, then
        the datasets of the BE after it (they never arrived)."""
        if not re.fullmatch(r"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+", token.strip()):
            raise UsageError("--resume takes the receive_resume_token 'bootenv receive --resume' printed")
        out = self.runner.run(["zfs", "send", "-nvP", "-t", token.strip()], check=False)
        m = re.search(r"toname\s*=\s*(\S+)", out.stdout + out.stderr)
        if out.returncode != 0 and not m:
            raise OperationFailed(f"zfs send -t: {(out.stderr or out.stdout).strip()}")
        toname = m.group(1) if m else ""
        ds, _, snap = toname.partition("@")
        if ds not in datasets:
            raise UsageError(f"the resume token is for {toname or 'something else'}, not a dataset of {name}")
        top = datasets[0]
        streams = [Stream(ds[len(top):], "resume", None, None, token.strip())]
        for later in datasets[datasets.index(ds) + 1:]:
            if base is None:
                streams.append(Stream(later[len(top):], "full"))
            else:
                source = self._base_of(scan, later, base, later[len(top):])
                streams.append(Stream(later[len(top):], "incr", self._guid(source), source))
        header = Header(name, snap, raw, streams, self._local_props(datasets, streams, force=True))
        plan = SendPlan(name, datasets, snap, False, header, 0, False)
        plan.estimate, plan.estimate_exact = self._estimate(plan, raw, False)
        return plan

    def _local_props(self, datasets: list[str], streams: list[Stream], force: bool = False) -> dict:
        """rel -> the local org.bootenv: properties and mountpoint of each
        dataset sent without -p (incremental; a resume may be one)."""
        top = datasets[0]
        out = {}
        for stream in streams:
            if stream.kind == "full" and not force:
                continue
            text = self._zfs("get", "-H", "-p", "-s", "local", "-o", "property,value", "all", top + stream.rel)
            props = {}
            for line in text.splitlines():
                key, _, value = line.partition("\t")
                if key.startswith(PROP_NS) or key == "mountpoint":
                    props[key] = value
            out[stream.rel or "."] = props
        return out

    def _free_snapname(self, scan, datasets: list[str], name: str) -> str:
        candidate, n = name, 1
        while any(f"{ds}@{candidate}" in scan.datasets for ds in datasets):
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    def _send_argv(self, plan: SendPlan, stream: Stream, raw: bool, *, estimate: bool = False) -> list[str]:
        top = plan.datasets[0]
        argv = ["zfs", "send"]
        if estimate:
            argv += ["-n", "-P"]
        if stream.kind == "resume":
            return argv + ["-t", stream.token or ""]
        argv += (["-p"] if stream.kind == "full" else []) + (["-w"] if raw else []) + (["-v"] if not estimate else [])
        if stream.kind == "incr":
            argv += ["-i", stream.base or ""]
        return argv + [f"{top}{stream.rel}@{plan.header.snap}"]

    def _estimate(self, plan: SendPlan, raw: bool, guess: bool, scan=None) -> tuple[int, bool]:
        """`zfs send -nP` of every stream (exact); with no snapshot yet (a
        dry run that would take one), referenced / written since the base."""
        total = 0
        top = plan.datasets[0]
        for stream in plan.header.streams:
            ds = top + stream.rel
            if guess:
                if stream.kind == "incr" and stream.base and "@" in stream.base:
                    total += self.zfs.written_since(stream.base, ds)
                else:
                    total += scan.datasets[ds].number("referenced")
                continue
            out = self.runner.run(self._send_argv(plan, stream, raw, estimate=True), check=False)
            if out.returncode != 0:
                raise OperationFailed(f"zfs send -nP {ds}: {(out.stderr or out.stdout).strip()}")
            total += parse_size(out.stdout + "\n" + out.stderr)
        return total, not guess

    def prepare(self, plan: SendPlan) -> None:
        """Take the snapshot to send if needed and hold it (under the lock:
        these are the only changes a send makes, and the hold keeps prune
        off it while the stream flows)."""
        snap = plan.header.snap
        if plan.take_snapshot:
            self.zfs.snapshot([f"{ds}@{snap}" for ds in plan.datasets], {PROP_SNAPSHOT: "yes"})
        for ds in plan.datasets:
            if HOLD_TAG not in self.zfs.holds(f"{ds}@{snap}"):
                self.zfs.hold(f"{ds}@{snap}", HOLD_TAG)
        if not plan.estimate_exact:
            plan.estimate, plan.estimate_exact = self._estimate(plan, plan.header.raw, False)

    def send(self, plan: SendPlan, out_fd: int) -> None:
        """Write the header and every stream to `out_fd` (prepare first),
        then bookmark the sent snapshot. Raise OperationFailed."""
        snap = plan.header.snap
        os.write(out_fd, plan.header.line())
        top = plan.datasets[0]
        for i, stream in enumerate(plan.header.streams, 1):
            ds = top + stream.rel
            what = {"full": "full", "incr": f"incremental from {stream.base}", "resume": "resumed"}[stream.kind]
            self.say(f"bootenv: sending {i}/{len(plan.header.streams)}: {ds}@{snap} ({what})")
            status, err = self.runner.stream(self._send_argv(plan, stream, plan.header.raw), stdout=out_fd,
                                             on_stderr=self._progress, mutating=False)
            if status != 0:
                raise OperationFailed(f"zfs send {ds}@{snap} failed: {_last(err)}")
        self.keep_base(plan)

    def _progress(self, line: str) -> None:
        # zfs send -v: a size line first, then "HH:MM:SS  BYTES  SNAPSHOT" each second.
        self.say(f"bootenv: send: {line.strip()}")

    def keep_base(self, plan: SendPlan) -> None:
        """Hold the sent snapshot on every dataset and bookmark it, so the
        next incremental has its base (prune skips a held BE; once the
        hold is released and the snapshot pruned, the bookmark still is a
        base: `zfs send -i fs#bookmark`)."""
        snap = plan.header.snap
        for ds in plan.datasets:
            full = f"{ds}@{snap}"
            try:
                if not self._bookmark_exists(f"{ds}#{snap}"):
                    self.runner.run(["zfs", "bookmark", full, f"{ds}#{snap}"], mutating=True)
                # sent whole: `bootenv repair` never takes it for residue once its hold moves on
                self.zfs.set_props(full, {PROP_SENT: str(int(self.engine.clock()))})
            except (ZfsError, _run.CommandFailed) as exc:
                self.say(f"bootenv: could not keep {full} as the next base: {exc}")
        self._release_bases([s.base for s in plan.header.streams if s.kind == "incr"], bookmarked=True)

    def _release_bases(self, bases, *, bookmarked: bool) -> None:
        """The hold moves to the newest snapshot sent (or received): release
        `bootenv-send` on the bases of the increments that just went through
        (on the sender only where a bookmark of the base stays, so the base
        still serves a machine that has not had this increment). A failure
        is said, never raised: the transfer itself succeeded."""
        for base in bases:
            if not base or "@" not in base:
                continue  # a bookmark: nothing is held
            try:
                if HOLD_TAG not in self.zfs.holds(base):
                    continue
                if bookmarked and not self._bookmark_exists(base.replace("@", "#", 1)):
                    continue
                self.zfs.release(base, HOLD_TAG)
                self.say(f"bootenv: released the {HOLD_TAG} hold on {base}: the new snapshot is the next base")
            except (ZfsError, _run.CommandFailed) as exc:
                self.say(f"bootenv: could not release the {HOLD_TAG} hold on {base}: {exc}")

    # --------------------------------------------------------------- receive

    def _snapshot_guids(self) -> dict[str, str]:
        """guid -> snapshot, for every snapshot under the BE root (one
        listing: the base of an incremental is matched by guid)."""
        out = self._zfs("list", "-H", "-p", "-r", "-t", "snapshot", "-o", "name,guid", self.engine.be_root)
        guids = {}
        for line in out.splitlines():
            name, _, guid = line.partition("\t")
            guids.setdefault(guid.strip(), name)
        return guids

    def resume_tokens(self) -> dict[str, str]:
        """dataset -> receive_resume_token, for every partly received
        dataset under the BE root."""
        out = self._zfs("list", "-H", "-p", "-r", "-o", "name,receive_resume_token", self.engine.be_root)
        tokens = {}
        for line in out.splitlines():
            name, _, token = line.partition("\t")
            if token.strip() not in ("", "-"):
                tokens[name] = token.strip()
        return tokens

    def receive(self, in_fd: int, name: Optional[str] = None) -> tuple[str, Header]:
        """Receive a bootenv stream from `in_fd` as a new BE (NAME, or the
        sender's name); `finish` makes it a BE. Return (its name, the header). Raise BeExists (never overwrites),
        Refused (the base of an incremental is not here), UsageError (not
        a bootenv stream), OperationFailed (zfs receive failed: an
        interrupted receive is resumable, the message says how)."""
        engine = self.engine
        header = read_header(in_fd)
        name = validate_be_name(name or header.be)
        target = engine.dataset_of(name)
        resuming = header.streams[0].kind == "resume"
        scan = engine.scan()
        if target in scan.datasets and not resuming:
            raise BeExists(f"boot environment {name!r} already exists (receive it under another name: bootenv receive NEWNAME)")
        if resuming and target not in scan.datasets and not self.zfs.exists(target):
            raise BeNotFound(f"nothing to resume: no partly received {name} here")
        origins = {}
        guids = self._snapshot_guids() if any(s.kind == "incr" for s in header.streams) else {}
        for stream in header.streams:
            if stream.kind == "incr":
                found = guids.get(stream.base_guid or "")
                if not found:
                    raise Refused(
                        f"the base of this incremental stream (snapshot guid {stream.base_guid}, for {header.be}{stream.rel}) "
                        "is not here: send a full stream first"
                    )
                origins[stream.rel] = found
        for i, stream in enumerate(header.streams, 1):
            ds = target + stream.rel
            argv = ["zfs", "receive", "-s", "-u"]
            if stream.kind == "full":
                argv += ["-o", "canmount=noauto"]
            if stream.kind == "incr":
                # A plain (not -p) incremental stream lands as a new clone
                # of its base; ZFS checks the base's guid.
                argv += ["-o", "canmount=noauto", "-o", f"origin={origins[stream.rel]}"]
            self.say(f"bootenv: receiving {i}/{len(header.streams)}: {ds} ({stream.kind})")
            status, err = self.runner.stream(argv + [ds], stdin=in_fd, on_stderr=None, mutating=True)
            if status != 0:
                hint = ""
                if "resum" in err or "incomplete stream" in err or "checksum mismatch" in err or not err.strip():
                    hint = (
                        "; it can resume: 'bootenv receive --resume' prints the token, then on the sender "
                        f"'bootenv send {header.be} --resume TOKEN | bootenv receive {name}'"
                    )
                raise OperationFailed(f"zfs receive {ds} failed: {_last(err) or 'the stream ended early'}{hint}")
        return name, header

    def finish(self, name: str, header: Header):
        """Make a received BE one of ours (under the lock): canmount=noauto
        everywhere, a generation of this machine, when it came, a hold on
        the received snapshot (the base of the next incremental here too);
        the boot menu. Return the BE."""
        engine = self.engine
        target = engine.dataset_of(name)
        rows = self.zfs.list(target)
        for rel, props in header.props.items():
            ds = target + ("" if rel == "." else rel)
            wanted = {k: v for k, v in props.items() if k != PROP_STATE or v != STATE_PENDING}
            if wanted and any(r.name == ds for r in rows):
                self.zfs.set_props(ds, wanted)
        for row in rows:
            snap = f"{row.name}@{header.snap}"
            try:
                if self.zfs.exists(snap) and HOLD_TAG not in self.zfs.holds(snap):
                    self.zfs.hold(snap, HOLD_TAG)
            except ZfsError as exc:
                self.say(f"bootenv: could not hold {snap}: {exc}")
        # An increment (or the resumed rest of one) landed as a clone of the
        # local base: that base's hold moves on to the snapshot just received.
        self._release_bases([row.props.get("origin") for row in rows if row.props.get("origin") not in (None, "", "-")],
                            bookmarked=False)
        for row in rows:
            if row.props.get("canmount") not in ("noauto", "off"):
                self.zfs.set_props(row.name, {"canmount": "noauto"})
        scan = engine.scan()
        generation = engine._next_generation(scan)
        self.zfs.set_props(engine.be_root, {PROP_NEXT_GENERATION: str(generation + 1)})
        self.zfs.set_props(target, {PROP_GENERATION: str(generation), PROP_RECEIVED: str(int(engine.clock()))})
        if self.zfs.get_props(target, [PROP_STATE]).get(PROP_STATE) == STATE_PENDING:
            self.zfs.set_props(target, {PROP_STATE: STATE_COMPLETE})
        be = engine.get(name)
        engine.bootloader.post_create(be)
        return be


def parse_size(text: str) -> int:
    """The total of `zfs send -nP`'s "size" lines (0 when none)."""
    total = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "size" and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def _last(text: str) -> str:
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""
