"""The boot-environment engine: list, create, activate, destroy, rename,
describe, mount and unmount, on any ZfsBackend and Bootloader.

A boot environment (BE) is a filesystem directly under the BE root (the
parent of the dataset mounted at /, e.g. rpool/ROOT) together with its
descendants and, where /boot is a dataset of another pool (the OpenZFS
guides' and Ubuntu's `bpool`), its boot half: the filesystem of the same
name under the boot root (bpool/BOOT/NAME, found from what is mounted at
/boot). The engine never touches a dataset outside those two roots.

Mutating operations return a Plan (see plan.py): the CLI shows it, asks,
and executes it. Everything the engine decides is decided from ONE listing
taken before the plan is built (as FreeBSD libbe's be_destroy collects its
dependents before promoting any), so a plan never acts on half-changed
state it observed itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional, Sequence

from .boot.base import Bootloader
from .crash import crash_point
from .errors import BeExists, BeNotFound, NoZfsRoot, OperationFailed, Refused, UsageError
from .model import (
    PROP_COMMAND,
    PROP_GENERATION,
    PROP_KEEP,
    PROP_LAST_GOOD,
    PROP_NEXT_GENERATION,
    PROP_NS,
    PROP_OPERATION,
    PROP_ROLLBACK_AT,
    PROP_ROLLBACK_FROM,
    PROP_CREATED,
    PROP_KERNELS,
    PROP_KIND,
    PROP_ORIGIN_BE,
    PROP_SNAPSHOT,
    PROP_STATE,
    PROP_TITLE,
    PROP_TRIAL_BE,
    PROP_TRIAL_FALLBACK,
    NOT_WHOLE,
    STATE_DESTROYING,
    STATE_PENDING,
    USER_PROPS,
    BootEnv,
    Snapshot,
    be_dataset,
    be_name_of,
    check_dataset_names,
    human_size,
    is_be_top,
    validate_be_name,
    validate_title,
)
from .plan import Kind, Plan
from .retention import DESTROY, KEEP, Decision, Policy, cap, decide, parse_duration
from .zfs.base import Dataset, DatasetNotFound, ZfsBackend, ZfsError, parent_of, pool_get_later, pool_of

DEFAULT_MOUNT_BASE = "/run/bootenv"
# The one line a command prints on stderr when its listing shows residue (Engine.residue).
RESIDUE_HINT = "bootenv: residue of an interrupted run found; run 'bootenv repair'"


@dataclass
class PruneResult:
    decisions: list[Decision]  # every BE, newest first
    pressure: bool  # pool free below the floor
    free_percent: Optional[float]
    destroyed: list[str]  # the names that go


def rollback_notes(running: BootEnv, target: BootEnv, why: str) -> list[str]:
    """What a rollback changes at the next boot, for people."""
    def label(be: BootEnv) -> str:
        gen = f"generation {be.generation}, " if be.generation is not None else ""
        when = datetime.fromtimestamp(be.created).strftime("%Y-%m-%d %H:%M") if be.created else "unknown time"
        return f"{be.name} ({gen}{be.kind or 'manual'}, {when}{', ' + repr(be.title) if be.title else ''})"

    return [
        f"at the next boot: {label(target)}",
        f"instead of: {label(running)}",
        f"why this one: {why}",
    ]


@dataclass
class Scan:
    """One listing of the BE root, indexed for the questions the engine asks."""

    be_root: str
    datasets: dict[str, Dataset]
    running: Optional[str]  # dataset mounted at /, if under the BE root
    next_boot: Optional[str]  # dataset the bootloader boots next
    with_snapshots: bool
    bootfs: Optional[str] = None  # the pool's bootfs, as this scan read it
    boot_root: Optional[str] = None  # where the BEs' boot halves live (bpool/BOOT), if paired
    snapshots: dict[str, list[Dataset]] = field(default_factory=dict)  # fs -> its snapshots
    clones: dict[str, list[str]] = field(default_factory=dict)  # origin snapshot -> clones
    below: dict[str, list[str]] = field(default_factory=dict)  # BE top -> its descendants
    boot_half: dict[str, list[str]] = field(default_factory=dict)  # BE top -> its boot half

    def __post_init__(self) -> None:
        prefix = self.be_root + "/"
        for ds in self.datasets.values():
            if ds.is_snapshot:
                self.snapshots.setdefault(ds.filesystem, []).append(ds)
                continue
            if ds.origin:
                self.clones.setdefault(ds.origin, []).append(ds.name)
            be = be_name_of(self.be_root, ds.name)
            if be is not None and not is_be_top(self.be_root, ds.name):
                self.below.setdefault(prefix + be, []).append(ds.name)
            elif self.boot_root and (be := be_name_of(self.boot_root, ds.name)) is not None:
                self.boot_half.setdefault(prefix + be, []).append(ds.name)

    def in_roots(self, name: str) -> bool:
        """Whether a dataset or snapshot lives under the BE root or the boot root."""
        return name.startswith(self.be_root + "/") or bool(self.boot_root and name.startswith(self.boot_root + "/"))

    def tops(self) -> list[Dataset]:
        """The BEs: filesystems directly under the BE root, oldest first."""
        return [d for d in self.datasets.values() if not d.is_snapshot and is_be_top(self.be_root, d.name)]

    def tree(self, top: str) -> list[str]:
        """A BE's filesystems on the root pool: the top first, then
        descendants, parents before children."""
        return [top, *sorted(self.below.get(top, ()), key=lambda n: (n.count("/"), n))]

    def boot_tree(self, top: str) -> list[str]:
        """A BE's boot half (bpool/BOOT/NAME first, then below it); []
        when /boot is not paired or the BE has none."""
        return sorted(self.boot_half.get(top, ()), key=lambda n: (n.count("/"), n))

    def members(self, top: str) -> list[str]:
        """Every filesystem of a BE: its tree, then its boot half."""
        return self.tree(top) + self.boot_tree(top)


class Engine:
    """Given a ZFS backend and a bootloader driver, manage the BEs under one
    BE root. `be_root` and `running` override discovery (a rescue system,
    or a test guest whose / is not on ZFS); `clock` returns epoch seconds."""

    def __init__(
        self,
        zfs: ZfsBackend,
        bootloader: Optional[Bootloader] = None,
        *,
        be_root: Optional[str] = None,
        running: Optional[str] = None,
        clock: Callable[[], float] = time.time,
        mount_base: str = DEFAULT_MOUNT_BASE,
        manifests=None,
        boot_root: Optional[str] = None,
    ):
        self.zfs = zfs
        # Where package manifests are read from (apt/manifest.py's
        # StatusSource); None records none (unit tests, unless they inject).
        self.manifests = manifests
        self.bootloader = bootloader or Bootloader()
        self.clock = clock
        self.mount_base = mount_base
        self._running_override = running
        self.running_dataset = running if running else zfs.mounted_at("/")
        if be_root:
            self.be_root = be_root.rstrip("/")
        elif self.running_dataset and parent_of(self.running_dataset):
            self.be_root = parent_of(self.running_dataset)  # type: ignore[assignment]
        else:
            raise NoZfsRoot(
                "the root filesystem is not on ZFS (set BOOTENV_BE_ROOT to manage a BE root anyway)"
            )
        # Whether the BE root exists is what the first listing says (scan):
        # a read-only command costs one `zfs list`, nothing more.
        self.pool = pool_of(self.be_root)
        self.boot_root = self._find_boot_root(boot_root)
        self.boot_pool = pool_of(self.boot_root) if self.boot_root else None
        self.last_scan: Optional[Scan] = None  # the newest listing (scan)
        self.bootloader.bind(self.zfs, self.be_root, self.running_dataset, self.boot_root)

    def _find_boot_root(self, given: Optional[str]) -> Optional[str]:
        """Where the BEs' boot halves live: `given` (BOOTENV_BOOT_ROOT, or
        bootenv.conf's boot_root), `none` for no pairing, else found as the
        OpenZFS guides and Ubuntu's installer lay it out: the dataset
        mounted at /boot is on another pool and named like the running BE
        (bpool/BOOT/debian beside rpool/ROOT/debian -> bpool/BOOT). A
        mount read, no ZFS command."""
        if given is None:
            from . import config

            given = os.environ.get("BOOTENV_BOOT_ROOT") or config.read().get("boot_root") or "auto"
        if given == "none":
            return None
        if given != "auto":
            return given.rstrip("/")
        if not self.running_dataset or parent_of(self.running_dataset) != self.be_root:
            return None
        boot = self.zfs.mounted_at("/boot")
        if not boot or pool_of(boot) == self.pool or not parent_of(boot):
            return None
        if boot.rsplit("/", 1)[1] != self.running_dataset.rsplit("/", 1)[1]:
            return None
        return parent_of(boot)

    # ------------------------------------------------------------ names

    def dataset_of(self, name: str) -> str:
        """Given a BE name, return its top dataset under the BE root."""
        return be_dataset(self.be_root, name)

    def boot_dataset_of(self, name: str) -> str:
        """Given a BE name, return its boot half (only with a boot root)."""
        assert self.boot_root
        return be_dataset(self.boot_root, name)

    def name_of(self, dataset: str) -> Optional[str]:
        """Given a dataset or snapshot under the BE root or the boot root,
        return the name of the BE it belongs to (None outside them)."""
        found = be_name_of(self.be_root, dataset)
        if found is None and self.boot_root:
            found = be_name_of(self.boot_root, dataset)
        return found

    def counterpart(self, dataset: str, name: str) -> str:
        """Given a dataset or snapshot of one BE, the same one in BE `name`
        (rpool/ROOT/a/var -> rpool/ROOT/NAME/var, bpool/BOOT/a -> bpool/BOOT/NAME)."""
        root = self.be_root if be_name_of(self.be_root, dataset) is not None else self.boot_root
        rest = dataset[len(root) + 1 :]
        cut = min((i for i in (rest.find("/"), rest.find("@")) if i >= 0), default=len(rest))
        return f"{root}/{name}{rest[cut:]}"

    # ------------------------------------------------------------ reading

    def scan(self, snapshots: bool = False, extra_props: Sequence[str] = ()) -> Scan:
        """One listing of the BE root (snapshots only when asked: listing
        them is what makes `zfs list` slow on real pools) with bootenv's
        user properties and `extra_props` (the BE root's own row is in it:
        trial state lives there), and one read of the pool's bootfs. Raise
        NoZfsRoot when the BE root does not exist."""
        props = tuple(dict.fromkeys((*USER_PROPS, *extra_props)))
        bootfs_of_pool = pool_get_later(self.zfs, self.pool, "bootfs")  # zpool get beside zfs list
        try:
            rows = self.zfs.list(self.be_root, snapshots=snapshots, user_props=props)
        except DatasetNotFound:
            with contextlib.suppress(ZfsError):
                bootfs_of_pool()  # reaped (the missing BE root is what to say)
            raise NoZfsRoot(f"BE root {self.be_root} does not exist") from None
        datasets = {d.name: d for d in rows}
        if self.boot_root:
            datasets.update((d.name, d) for d in self._list_boot_root(snapshots, props))
        running = self.running_dataset if self.running_dataset in datasets else None
        bootfs = bootfs_of_pool()
        next_boot = self.bootloader.next_boot(self.be_root, bootfs)
        # Kept for the CLI's residue hint: it asks the listing it already has.
        self.last_scan = Scan(self.be_root, datasets, running, next_boot, snapshots, bootfs, self.boot_root)
        return self.last_scan

    def _list_boot_root(self, snapshots: bool, props: Sequence[str]) -> list[Dataset]:
        """The boot root's listing (a second `zfs list`: another pool).
        Raise NoZfsRoot when it is gone (configured wrongly, or exported)."""
        assert self.boot_root
        try:
            return self.zfs.list(self.boot_root, snapshots=snapshots, user_props=props)
        except DatasetNotFound:
            raise NoZfsRoot(
                f"boot root {self.boot_root} does not exist (BOOTENV_BOOT_ROOT or boot_root in bootenv.conf; 'none' turns pairing off)"
            ) from None

    def list(self, scan: Optional[Scan] = None) -> list[BootEnv]:
        """Return every BE, oldest first (from `scan` when given)."""
        scan = scan or self.scan()
        return [self._bootenv(scan, top) for top in scan.tops()]

    def get(self, name: str, scan: Optional[Scan] = None) -> BootEnv:
        """Return the BE called `name`. Raise BeNotFound."""
        scan = scan or self.scan()
        return self._bootenv(scan, self._top(scan, name))

    def _reread(self, scan: Scan, name: str) -> BootEnv:
        """The BE `name` just made, from a listing of its own tree only (not
        the whole BE root: a checkpoint costs the same with 1 BE or 100);
        what boots next as `scan` saw it (making a BE does not move it)."""
        rows = self.zfs.list(self.dataset_of(name), user_props=USER_PROPS)
        if self.boot_root:
            with contextlib.suppress(DatasetNotFound):  # a BE made before its source had a boot half
                rows += self.zfs.list(self.boot_dataset_of(name), user_props=USER_PROPS)
        fresh = Scan(self.be_root, {d.name: d for d in rows}, None, scan.next_boot, False, scan.bootfs, self.boot_root)
        return self._bootenv(fresh, self._top(fresh, name))

    def snapshots_of(self, name: str) -> list[Snapshot]:
        """Return the snapshots of a BE's top dataset, oldest first."""
        scan = self.scan(snapshots=True)
        top = self._top(scan, name)
        return [self._snapshot(scan, s) for s in scan.snapshots.get(top.name, [])]

    def _top(self, scan: Scan, name: str) -> Dataset:
        validate_be_name(name)
        ds = scan.datasets.get(self.dataset_of(name))
        if ds is None:
            raise BeNotFound(f"no boot environment named {name!r} under {self.be_root}")
        return ds

    def _bootenv(self, scan: Scan, top: Dataset) -> BootEnv:
        origin = top.origin
        origin_be = self.name_of(origin) if origin else None
        created = top.user(PROP_CREATED) or top.props.get("creation")
        return BootEnv(
            name=self.name_of(top.name) or top.name,
            dataset=top.name,
            active=top.name == scan.next_boot,
            running=top.name == scan.running,
            createtxg=top.createtxg,
            created=int(created) if created and created.isdigit() else None,
            used=top.number("used") + sum(scan.datasets[b].number("used") for b in scan.boot_tree(top.name)[:1]),
            referenced=top.number("referenced"),
            origin=origin,
            origin_be=origin_be,
            title=top.user(PROP_TITLE) or "",
            kind=top.user(PROP_KIND),
            command=top.user(PROP_COMMAND),
            state=top.user(PROP_STATE),
            mounted=top.props.get("mounted") == "yes",
            children=tuple(scan.tree(top.name)[1:]),
            kernels=top.user(PROP_KERNELS),
            generation=_int(top.user(PROP_GENERATION)),
            keep=top.user(PROP_KEEP) == "yes",
            ours=any(top.user(p) is not None for p in USER_PROPS if p != PROP_OPERATION),
            rollback_from=top.user(PROP_ROLLBACK_FROM),
            rollback_at=_int(top.user(PROP_ROLLBACK_AT)),
            encryption_root=top.props.get("encryptionroot"),
            boot=tuple(scan.boot_tree(top.name)),
        )

    def _snapshot(self, scan: Scan, snap: Dataset) -> Snapshot:
        return Snapshot(
            name=snap.name,
            createtxg=snap.createtxg,
            used=snap.number("used"),
            clones=tuple(scan.clones.get(snap.name, ())),
            holds=0,
            ours=snap.user(PROP_SNAPSHOT) == "yes",
        )

    # ------------------------------------------------------------ selectors

    def select(self, selector: str, scan: Optional[Scan] = None) -> str:
        """Given a selector naming one BE, return the BE's name.

          NAME        a BE by name (`=NAME` for a name that reads as a selector: =2026)
          N           generation N
          -K          the K-th generation before the running BE's (-1: the one before)
          @running    the running BE; @next: the one that boots next;
          @last-good  the one the last confirmed boot ran (bootenv confirm)

        Raise BeNotFound, UsageError (a range or an age names several)."""
        names = self._select(selector, scan or self.scan(), many=False)
        return names[0]

    def select_many(self, selectors: list[str], scan: Optional[Scan] = None) -> list[str]:
        """Given selectors (those of `select`, plus ranges `3..7` of
        generations and ages `30d`: every BE older than that), return the
        names they choose, each once, in the order given. Raise BeNotFound
        when one chooses nothing, UsageError."""
        scan = scan or self.scan()
        out: list[str] = []
        for selector in selectors:
            for name in self._select(selector, scan, many=True):
                if name not in out:
                    out.append(name)
        return out

    def _select(self, selector: str, scan: Scan, *, many: bool) -> list[str]:
        bes = [self._bootenv(scan, top) for top in scan.tops()]
        by_gen = {be.generation: be.name for be in bes if be.generation is not None}
        text = selector.strip()
        if text.startswith("="):
            name = text[1:]
            self._top(scan, name)
            return [name]
        if text.startswith("@"):
            return [self._special(scan, bes, text)]
        if text.startswith("-") and not text[1:].isdigit():
            raise UsageError(f"no such option: {text} (a selector counting back is -N, e.g. -1)")
        if text.startswith("-") and text[1:].isdigit():
            running = next((be for be in bes if be.running), None)
            if running is None or running.generation is None:
                raise BeNotFound(f"{text}: the running boot environment has no generation to count back from")
            older = sorted((g for g in by_gen if g < running.generation), reverse=True)
            back = int(text[1:])
            if back == 0:
                return [running.name]
            if back > len(older):
                raise BeNotFound(f"{text}: there are only {len(older)} generations before the running one ({running.generation})")
            return [by_gen[older[back - 1]]]
        if text.isdigit():
            if int(text) not in by_gen:
                hint = f" (the BE named {text!r} is '={text}')" if self.dataset_of(text) in scan.datasets else ""
                raise BeNotFound(f"no boot environment of generation {text}{hint}")
            return [by_gen[int(text)]]
        low, dots, high = text.partition("..")
        if dots and (low.isdigit() or not low) and (high.isdigit() or not high) and (low or high):
            if not many:
                raise UsageError(f"{text} names a range of generations: name one boot environment here")
            lo, hi = int(low or 0), int(high) if high else max(by_gen, default=0)
            chosen = [by_gen[g] for g in sorted(by_gen) if lo <= g <= hi]
            if not chosen:
                raise BeNotFound(f"no boot environment of a generation in {text}")
            return chosen
        if text[:-1].isdigit() and text[-1:] in "smhdw" and self.dataset_of(text) not in scan.datasets:
            if not many:
                raise UsageError(f"{text} is an age (every BE older than it): name one boot environment here")
            cutoff = int(self.clock()) - parse_duration(text)
            chosen = [be.name for be in bes if be.created is not None and be.created < cutoff]
            if not chosen:
                raise BeNotFound(f"no boot environment older than {text}")
            return chosen
        self._top(scan, text)
        return [text]

    def _special(self, scan: Scan, bes: list[BootEnv], text: str) -> str:
        if text == "@running":
            found = next((be.name for be in bes if be.running), None)
        elif text == "@next":
            found = next((be.name for be in bes if be.active), None)
        elif text == "@last-good":
            found = self.zfs.get_props(self.be_root, [PROP_LAST_GOOD]).get(PROP_LAST_GOOD)
            if found and self.dataset_of(found) not in scan.datasets:
                raise BeNotFound(f"@last-good is {found}, which no longer exists")
        else:
            raise UsageError(f"unknown selector {text!r} (known: @running, @next, @last-good)")
        if not found:
            raise BeNotFound(f"no boot environment is {text[1:]} here")
        return found

    # ------------------------------------------------------------ create

    def default_name(self, kind: str = "manual") -> str:
        """A fresh checkpoint name from the clock: be-20261122-040512."""
        prefix = {"manual": "be"}.get(kind, kind)
        return datetime.fromtimestamp(self.clock()).strftime(f"{prefix}-%Y%m%d-%H%M%S")

    def plan_create(
        self,
        name: Optional[str] = None,
        *,
        source: Optional[str] = None,
        title: str = "",
        kind: str = "manual",
        command: Optional[str] = None,
        state: str = "complete",
    ) -> Plan:
        """Plan a checkpoint: one atomic snapshot of the source BE's whole
        tree, then a clone of each dataset under the new name, canmount=
        noauto so nothing mounts it at boot. The new BE carries title,
        created, kind, origin BE and command in org.bootenv: properties;
        state is `pending` until the last clone exists (a crash leaves a
        BE that says so), then `state`. Raise BeExists / BeNotFound."""
        scan = self.scan(snapshots=False)
        src_top = self._create_source(scan, source)
        src_name = self.name_of(src_top.name) or src_top.name
        if name is None:
            name = self._unique_name(scan, self.default_name(kind))
        validate_be_name(name)
        validate_title(title)
        target = self.dataset_of(name)
        tree = scan.members(src_top.name)
        # Up front, before any ZFS call: the longest names this creates
        # (a snapshot suffix can only grow them, see _free_snapname).
        check_dataset_names(
            [f"{ds}@{name}" for ds in tree] + [self.counterpart(ds, name) for ds in tree],
            f"cannot create {name}",
        )
        if target in scan.datasets or self.zfs.exists(target):
            raise BeExists(f"boot environment {name!r} already exists")
        boot_tree = scan.boot_tree(src_top.name)
        if boot_tree:
            if self.zfs.exists(self.boot_dataset_of(name)):
                raise BeExists(f"{self.boot_dataset_of(name)} already exists: the boot half of a boot environment {name!r}")
            self._check_boot_pool_room(scan, boot_tree[0], name)
        snapname = self._free_snapname(src_top.name, name, boot_tree[:1])
        clones = [(f"{ds}@{snapname}", self.counterpart(ds, name)) for ds in tree]
        check_dataset_names([o for o, _ in clones], f"cannot create {name}")
        meta = self._checkpoint_meta(title=title, kind=kind, origin_be=src_name, command=command)
        generation = self._next_generation(scan)
        meta[PROP_GENERATION] = str(generation)
        plan = Plan(f"Create boot environment {name} from {src_name}")
        plan.add(
            f"take generation {generation} (set {PROP_NEXT_GENERATION}={generation + 1} on {self.be_root})",
            # The same call records the operation (residue if killed, see PROP_OPERATION).
            lambda: self.zfs.set_props(self.be_root, {PROP_NEXT_GENERATION: str(generation + 1), PROP_OPERATION: f"create {name}"}),
            undo=lambda: self.zfs.inherit(self.be_root, PROP_OPERATION),
            kind=Kind.GENERATION,
        )
        # One atomic snapshot per pool (ZFS snapshots several datasets at
        # once only within a pool), the root pool first; the boot pool's
        # right after, and undone with it if it fails.
        for pool_snaps in self._by_pool([o for o, _ in clones]):
            plan.add(
                f"snapshot {', '.join(pool_snaps)}",
                lambda ss=pool_snaps: self.zfs.snapshot(ss, {PROP_SNAPSHOT: "yes"}),
                undo=lambda ss=pool_snaps: [self._destroy_quietly(x) for x in reversed(ss)],
                kind=Kind.SNAPSHOT,
            )
        for origin, clone in clones:
            props = self._clone_props(scan, src_top.name, origin.split("@", 1)[0])
            if clone == target:
                props.update(meta)
            plan.add(
                f"clone {origin} as {clone}",
                lambda o=origin, c=clone, p=props: self.zfs.clone(o, c, p),
                undo=lambda c=clone: self._destroy_quietly(c),
                kind=Kind.CLONE,
            )
        if self.manifests is not None and self.manifests.enabled:
            plan.add(
                f"record the package manifest of {name}",
                lambda: self._checkpoint_manifest(plan, scan, target, src_top.name),
                kind=Kind.SET_PROPS,
            )
        plan.add(f"mark {name} {state}", lambda: self.zfs.set_props(target, {PROP_STATE: state}), kind=Kind.MARK)

        def finish() -> None:
            plan.result = self._reread(scan, name)
            self.bootloader.post_create(plan.result)

        plan.add("update the boot menu", finish, kind=Kind.BOOTLOADER)
        self._end_operation(plan)
        return plan

    def _begin_operation(self, plan: Plan, what: str) -> None:
        """A first step recording on the BE root what the plan does (PROP_OPERATION)."""
        plan.add(
            f"record '{what}' on {self.be_root} (until done)",
            lambda: self.zfs.set_props(self.be_root, {PROP_OPERATION: what}),
            undo=lambda: self.zfs.inherit(self.be_root, PROP_OPERATION),
            kind=Kind.SET_PROPS,
        )

    def _end_operation(self, plan: Plan) -> None:
        plan.add(f"clear {PROP_OPERATION} on {self.be_root}", lambda: self.zfs.inherit(self.be_root, PROP_OPERATION), kind=Kind.SET_PROPS)

    def residue(self, scan: Scan) -> list[str]:
        """What a killed bootenv left that this listing shows by itself (no
        further ZFS call: `list` stays one `zfs list`), one line each;
        `bootenv repair` finds the rest (stray snapshots) and fixes it."""
        found = []
        root = scan.datasets.get(self.be_root)
        operation = root.user(PROP_OPERATION) if root is not None else None
        if operation:
            found.append(f"an interrupted '{operation}'")
        for top in scan.tops():
            state = top.user(PROP_STATE)
            if state in NOT_WHOLE:
                found.append(f"{self.name_of(top.name)} is {state} (not whole)")
        if scan.bootfs and scan.bootfs.startswith(self.be_root + "/") and scan.bootfs not in scan.datasets:
            found.append(f"bootfs names {scan.bootfs}, which does not exist")
        if scan.next_boot and scan.next_boot != scan.bootfs and scan.next_boot not in scan.datasets:
            found.append(f"the bootloader's next boot {scan.next_boot} does not exist")
        trial = root.user(PROP_TRIAL_BE) if root is not None else None
        if trial and self.dataset_of(trial) not in scan.datasets:
            found.append(f"a trial boot of {trial}, which does not exist")
        return found

    def _next_generation(self, scan: Scan) -> int:
        """The generation a new BE gets: the BE root's counter (set there
        locally, never inherited by a BE: it has its own name), and never
        below one more than any BE has (a counter lost or set back)."""
        counter = _int(self.zfs.get_props(self.be_root, [PROP_NEXT_GENERATION]).get(PROP_NEXT_GENERATION)) or 1
        highest = max((_int(top.user(PROP_GENERATION)) or 0 for top in scan.tops()), default=0)
        return max(counter, highest + 1)

    def _create_source(self, scan: Scan, source: Optional[str]) -> Dataset:
        """The top dataset a checkpoint is taken of: `source`, or the
        running BE. Raise BeNotFound, UsageError when nothing runs here."""
        if source is not None:
            return self._top(scan, source)
        if not scan.running:
            raise UsageError("no running boot environment here: name the source with --from")
        return scan.datasets[scan.running]

    def _checkpoint_meta(self, *, title: str, kind: str, origin_be: str, command: Optional[str]) -> dict[str, str]:
        """The org.bootenv: properties a new BE's top is cloned with; state
        `pending` until the plan's last step but one marks it."""
        meta = {
            PROP_CREATED: str(int(self.clock())),
            PROP_KIND: kind,
            PROP_ORIGIN_BE: origin_be,
            PROP_STATE: STATE_PENDING,
        }
        if title:
            meta[PROP_TITLE] = title
        if command:
            meta[PROP_COMMAND] = command
        return meta

    def _clone_props(self, scan: Scan, src_top: str, src_ds: str) -> dict[str, str]:
        """Native properties a clone of `src_ds` needs to behave like it:
        canmount=noauto (never mounted at boot over the running system;
        `off` stays off) and its mountpoint when the clone would not
        inherit the same one (the top's `/` is always set locally)."""
        ds = scan.datasets[src_ds]
        props = {"canmount": "off" if ds.props.get("canmount") == "off" else "noauto"}
        mountpoint = ds.props.get("mountpoint")
        if mountpoint:
            parent = scan.datasets.get(parent_of(src_ds) or "")
            inherited = None
            if src_ds != src_top and parent is not None:
                base = parent.props.get("mountpoint", "")
                if base.startswith("/"):
                    inherited = base.rstrip("/") + "/" + src_ds.rsplit("/", 1)[1]
            if mountpoint != inherited:
                props["mountpoint"] = mountpoint
        return props

    def _unique_name(self, scan: Scan, name: str) -> str:
        candidate, n = name, 1
        while self.dataset_of(candidate) in scan.datasets:
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    def _free_snapname(self, fs: str, name: str, others: Sequence[str] = ()) -> str:
        """The snapshot name for a checkpoint: the new BE's name, suffixed
        if an old snapshot of that name is still there (on `fs` or on
        `others`: the boot half)."""
        candidate, n = name, 1
        while any(self.zfs.exists(f"{ds}@{candidate}") for ds in (fs, *others)):
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    @staticmethod
    def _by_pool(names: Sequence[str]) -> list[list[str]]:
        """Names grouped by pool, in the order each pool first appears."""
        groups: dict[str, list[str]] = {}
        for name in names:
            groups.setdefault(pool_of(name), []).append(name)
        return list(groups.values())

    def _check_boot_pool_room(self, scan: Scan, boot_top: str, name: str) -> None:
        """Refuse a checkpoint on a boot pool with less space available
        than the source's /boot holds (zsys #231): the checkpoint keeps
        today's kernels and initramfs while the next kernel upgrade writes
        new ones, and a full boot pool fails that upgrade halfway. The boot
        half's `available`, not the pool's `free`: that counts the slop
        space OpenZFS keeps back (128 MiB of a 2G bpool, half of a small one)."""
        assert self.boot_pool
        free = _int(self.zfs.get_props(boot_top, ["available"]).get("available"))
        needs = scan.datasets[boot_top].number("referenced")
        if free is not None and free < needs:
            raise Refused(
                f"cannot create {name}: boot pool {self.boot_pool} has {human_size(free)} available, less than the "
                f"{human_size(needs)} /boot holds ({boot_top}): a checkpoint keeps today's kernels, so the next kernel "
                f"upgrade would fill it; destroy old boot environments first (bootenv prune, bootenv destroy)"
            )

    def set_bootfs(self, dataset: str) -> None:
        """Point the pool's bootfs at `dataset` (the crash seam's `bootfs`)."""
        crash_point("bootfs", "before")
        self.zfs.pool_set(self.pool, "bootfs", dataset)
        crash_point("bootfs", "after")

    def _destroy_quietly(self, name: str) -> None:
        """Undo helper: remove something this plan created, if it exists."""
        if self.zfs.exists(name):
            self.zfs.destroy(name)

    def set_metadata(self, name: str, props: dict[str, str]) -> None:
        """Set org.bootenv: properties on a BE's top dataset (state after an
        apt run, the packages it changed). Raise BeNotFound, UsageError for
        a property outside the namespace."""
        if not all(key.startswith(PROP_NS) for key in props):
            raise UsageError(f"bootenv only sets {PROP_NS}* properties")
        validate_be_name(name)
        dataset = self.dataset_of(name)
        if not self.zfs.exists(dataset):
            raise BeNotFound(f"no boot environment named {name!r} under {self.be_root}")
        try:
            self.zfs.set_props(dataset, props)
        except ZfsError as exc:
            raise OperationFailed(f"set properties on {dataset}: {exc}") from exc

    # ------------------------------------------------------------ manifests

    def _checkpoint_manifest(self, plan: Plan, scan: Scan, target: str, source: str) -> None:
        """Give a new checkpoint its source's package manifest: the running
        BE's dpkg status, else the manifest the source carries. A manifest
        is never a reason for a checkpoint to fail: trouble is a note."""
        from .apt.manifest import ManifestError

        try:
            if source == scan.running:
                found = self.manifests.read("/")
                props = found.to_props() if found is not None else None
            else:
                props = self._manifest_props(source) or None
            if props:
                self.zfs.set_props(target, props)
        except (OSError, ZfsError, ManifestError, SystemError) as exc:
            plan.notes.append(f"no package manifest recorded for {target}: {exc}")

    def _manifest_props(self, dataset: str) -> dict[str, str]:
        """The manifest properties a dataset carries (header and parts), {}
        when it has none: two property reads."""
        from .apt.manifest import PROP_MANIFEST, Manifest, part_prop

        header = self.zfs.get_props(dataset, [PROP_MANIFEST])
        count = Manifest.parts_of(header.get(PROP_MANIFEST))
        if not count:
            return {}
        return {**header, **self.zfs.get_props(dataset, [part_prop(i) for i in range(count)])}

    def record_manifest(self, name: str, mounted_at: str) -> bool:
        """Record the manifest of BE `name`, mounted at `mounted_at` (a
        sandbox upgrade's result, read in its chroot), replacing the one it
        had. Return whether one was recorded."""
        from .apt.manifest import PROP_MANIFEST, stale_parts

        if self.manifests is None or not self.manifests.enabled:
            return False
        found = self.manifests.read(mounted_at)
        if found is None:
            return False
        dataset = self.dataset_of(name)
        props = found.to_props()
        old = self.zfs.get_props(dataset, [PROP_MANIFEST]).get(PROP_MANIFEST)
        self.zfs.set_props(dataset, props)
        for prop in stale_parts(old, props):
            self.zfs.inherit(dataset, prop)
        return True

    def manifest(self, name: str, scan: Optional[Scan] = None):
        """The package manifest of BE `name` (apt/manifest.py's Manifest):
        the running BE's live dpkg status; else the one it carries; else
        its dpkg status read with it mounted read-only in bootenv's own
        mount namespace. None when it has no dpkg status. Raise
        BeNotFound, OperationFailed."""
        from .apt.manifest import Manifest, ManifestError, StatusSource

        scan = scan or self.scan()
        top = self._top(scan, name)
        source = self.manifests if self.manifests is not None else StatusSource()
        try:
            if top.name == scan.running:
                return source.read("/")
            found = Manifest.from_props(self._manifest_props(top.name))
            if found is not None:
                return found
            with self.mounted_readonly(name, scan) as path:
                return source.read(path)
        except (OSError, ManifestError, SystemError) as exc:
            raise OperationFailed(f"package manifest of {name}: {exc}") from exc

    def mounted_readonly(self, name: str, scan: Optional[Scan] = None):
        """A context: BE `name` mounted read-only (in bootenv's own mount
        namespace) at its path under the mount base, unmounted after; the
        running BE is just /, a BE mounted already (bootenv mount) its place."""
        from contextlib import contextmanager

        @contextmanager
        def ctx():
            s = scan or self.scan()
            top = self._top(s, name)
            if top.name == s.running:
                yield "/"
                return
            if top.props.get("mounted") == "yes":
                yield self._where_mounted(top.name)
                return
            path = self.mount(name, readonly=True, private=True)
            try:
                yield path
            finally:
                self.unmount(name)

        return ctx()

    def _where_mounted(self, dataset: str) -> str:
        where = getattr(self.zfs, "mountpoints_of", None)
        places = where(dataset) if where else []
        if not places:
            raise Refused(f"{dataset} is mounted, but bootenv cannot tell where; unmount it first")
        return places[-1]

    # ------------------------------------------------------------ activate

    def plan_activate(self, name: str, *, once: bool = False) -> Plan:
        """Plan making `name` the next boot: check it with the bootloader
        driver (mounted, when the driver looks inside: nothing has changed
        yet if it refuses), promote its datasets that are clones (so it owns
        its history and older BEs can be destroyed, as bectl does), point
        the pool's bootfs at it, and let the driver follow.

        With `once`, only the next boot uses it (trial.py records the
        trial): the driver's one-shot when it has one, else bootfs until
        the trial boot puts it back; nothing is promoted. Raise BeNotFound."""
        scan = self.scan()
        top = self._top(scan, name)
        be = self._bootenv(scan, top)
        self._check_whole(scan, top, be)
        plan = Plan(f"Activate boot environment {name}" + (" for the next boot only" if once else ""))
        if be.active:
            plan.notes.append(f"{name} already boots next")
        if once and be.boot:
            raise Refused(
                f"cannot boot {name} once: /boot is {be.boot[0]} on pool {self.boot_pool}, and which /boot a boot "
                f"mounts is its canmount, not a one-shot; activate it (bootenv activate {name}) and activate back after"
            )
        plan.add(f"check that {name} can boot", lambda: self.bootloader.pre_activate(be), kind=Kind.CHECK)
        plan.add(f"prepare {name} for the bootloader", lambda: self._mid_activate(be), kind=Kind.PREPARE)
        if once:
            if self.bootloader.oneshot:
                plan.add(
                    f"boot {name} once ({self.bootloader.name} one-shot)",
                    lambda: self.bootloader.set_oneshot(be),
                    kind=Kind.SWITCH,
                )
            else:
                old = self.zfs.pool_get(self.pool, "bootfs")
                plan.add(
                    f"set {self.pool} bootfs={top.name} (until the trial boot starts)",
                    lambda: self.set_bootfs(top.name),
                    undo=(lambda: self.set_bootfs(old)) if old else None,
                    kind=Kind.SET_BOOTFS,
                )
            plan.result = be
            return plan
        for ds in scan.members(top.name):
            origin = scan.datasets[ds].origin
            if origin and self.name_of(origin):
                plan.add(f"promote {ds} (origin {origin})", lambda d=ds: self.zfs.promote(d), kind=Kind.PROMOTE)
        self.plan_boot_mount(plan, scan, top.name)
        plan.add(
            f"set {self.pool} bootfs={top.name}",
            lambda: self.set_bootfs(top.name),
            kind=Kind.SET_BOOTFS,
        )
        plan.add("update the bootloader default", lambda: self.bootloader.post_activate(be), kind=Kind.BOOTLOADER)
        plan.result = be
        return plan

    def plan_boot_mount(self, plan: Plan, scan: Scan, top: str) -> None:
        """What a boot mounts by itself (`zfs mount -a`, zfs-mount-generator:
        the canmount=on datasets) must belong to the activated BE alone:
        every other BE's dataset that is canmount=on becomes noauto (its
        boot half; and Ubuntu's installer makes a root and its children
        `on`, which would be mounted over the booted BE's), and, where /boot
        is paired, the activated BE's boot half becomes on (the initramfs
        mounts the root pool's BE, its children included, never the boot
        pool). ZFS neither mounts nor unmounts on these changes (libzfs
        gathers mounts only for canmount=off), so nothing running moves."""
        for other in scan.tops():
            if other.name == top:
                continue
            for ds in scan.members(other.name):
                if scan.datasets[ds].props.get("canmount") == "on":
                    where = "/boot" if ds in scan.boot_half.get(other.name, ()) else scan.datasets[ds].props.get("mountpoint", "")
                    plan.add(
                        f"set canmount=noauto on {ds} (not mounted at {where} at boot)",
                        lambda d=ds: self.zfs.set_props(d, {"canmount": "noauto"}),
                        undo=lambda d=ds: self.zfs.set_props(d, {"canmount": "on"}),
                        kind=Kind.BOOT_MOUNT,
                    )
        mine = scan.boot_tree(top)[:1]
        if mine and scan.datasets[mine[0]].props.get("canmount") != "on":
            old = scan.datasets[mine[0]].props.get("canmount") or "noauto"
            plan.add(
                f"set canmount=on on {mine[0]} (mounted at /boot at boot)",
                lambda: self.zfs.set_props(mine[0], {"canmount": "on"}),
                undo=lambda: self.zfs.set_props(mine[0], {"canmount": old}),
                kind=Kind.BOOT_MOUNT,
            )

    def _check_whole(self, scan: Scan, top: Dataset, be: BootEnv) -> None:
        """Refuse to boot a BE that is not whole: its create never finished
        (state pending), or datasets of its source's tree were never cloned
        into it. A checkpoint whose apt run never finished (unfinished-apt)
        is whole and may be activated: it is what an admin rolls back to.
        The running BE is whole enough: it booted."""
        if be.running:
            return
        way_out = f"destroy it (bootenv destroy {be.name}) and create it again"
        if be.state == STATE_PENDING:
            raise Refused(f"{be.name} is not whole: its create never finished (state {STATE_PENDING}); {way_out}")
        if be.state == STATE_DESTROYING:
            raise Refused(f"{be.name} is not whole: a destroy of it was interrupted (state {STATE_DESTROYING}); finish it: bootenv destroy {be.name}")
        missing = self._missing_datasets(scan, top)
        if missing:
            raise Refused(f"{be.name} is not whole: {', '.join(missing)} missing (its create never finished); {way_out}")

    def _missing_datasets(self, scan: Scan, top: Dataset) -> list[str]:
        """The datasets a BE cloned from another one should have and has
        not: the source's descendants that have the origin snapshot."""
        if not top.origin or "@" not in top.origin:
            return []
        src, snapname = top.origin.split("@", 1)
        if src not in scan.datasets:
            return []
        missing = []
        name = self.name_of(top.name) or top.name
        for ds in scan.members(src)[1:]:
            expected = self.counterpart(ds, name)
            if expected not in scan.datasets and self.zfs.exists(f"{ds}@{snapname}"):
                missing.append(expected)
        return missing

    def _mid_activate(self, be: BootEnv) -> None:
        """Run the driver's mid-activate phase, with the BE mounted when the
        driver needs to look inside it (the running BE is at /); a paired
        BE's zfs-mount-generator cache is pointed at its boot half there
        too (boot/listcache.py)."""
        if not (self.bootloader.needs_mount or be.boot):
            self.bootloader.mid_activate(be, None)
            return
        if be.running:
            self._inside(be, "/", self.bootloader.path("/"))
        elif be.mounted:
            raise Refused(f"{be.name} is mounted; unmount it before activating")
        else:
            path = self.mount(be.name, private=True)
            try:
                self._inside(be, path, path)
            finally:
                self.unmount(be.name)

    def _inside(self, be: BootEnv, mountpoint: str, files: str) -> None:
        """What activate does inside the BE mounted at `mountpoint` (its
        files at `files`: the running system's root for `/`)."""
        self.bootloader.mid_activate(be, mountpoint if self.bootloader.needs_mount else None)
        if be.boot and self.boot_pool and self.boot_root:
            from .boot.listcache import point_at_boot_half

            try:
                point_at_boot_half(files, self.boot_pool, self.boot_root, be.boot[0])
            except OSError as exc:
                raise OperationFailed(f"cannot point {be.name}'s zfs-list.cache at {be.boot[0]}: {exc}") from exc

    # ------------------------------------------------------------ destroy

    def plan_destroy(
        self, names, *, scan: Optional[Scan] = None, summary: Optional[str] = None, reclaim: bool = False, strict: bool = False
    ) -> Plan:
        """Plan destroying BE `names` (one name, or several: one plan) and
        the snapshots that go with them.

        Refuse the running BE and the next-boot BE. If other BEs were
        cloned from its snapshots, promote the dependent cloned from the
        newest one first: the snapshots up to it move to that BE and the
        other dependents are re-pointed (zfs-promote(8)), so no BE loses
        its origin. Then destroy the BE's own remaining snapshots and
        datasets (deepest first) and the origin snapshot it no longer
        needs, if bootenv took it and nothing else depends on it. Several
        BEs: dependants inside the set are destroyed before what they
        depend on, and only BEs outside the set inherit. Refuse if a
        snapshot to destroy has holds. Raise BeNotFound / Refused.
        `plan.result` is the BE (one name) or the list of BEs. `reclaim`:
        set plan.reclaim, what it frees (a ZfsError reading it is a note,
        unless `strict`: a dry run, whose output the figure is).
        """
        single = isinstance(names, str)
        wanted = [names] if single else list(dict.fromkeys(names))
        if not wanted:
            raise UsageError("no boot environment to destroy")
        scan = scan or self.scan(snapshots=True)
        protected = self.protected(scan)
        bes: dict[str, BootEnv] = {}
        for name in wanted:
            top = self._top(scan, name)
            be = self._bootenv(scan, top)
            self._refuse_destroy(be, top, protected)
            bes[name] = be
        trees = {name: scan.members(bes[name].dataset) for name in wanted}
        members = {ds for tree in trees.values() for ds in tree}
        self._refuse_outside_dependants(scan, trees)
        order = self._destroy_order(scan, trees)
        title = f"Destroy boot environment {wanted[0]}" if len(wanted) == 1 else f"Destroy {len(wanted)} boot environments: {', '.join(order)}"
        plan = Plan(summary or title)
        self._begin_operation(plan, f"destroy {','.join(order)}")
        for name in order:
            self._plan_mark_destroying(plan, bes[name])
        doomed: list[str] = []
        for name in order:
            tree = trees[name]
            promotions, heirs = self._plan_promotions(plan, scan, tree, members)
            doomed += self._plan_own_destroys(plan, scan, tree, promotions)
            doomed += self._plan_leftover_origins(plan, scan, tree, promotions, heirs, members)
        # The listing's userrefs says which snapshots have holds: ask for
        # the tags of those only (no `zfs holds` per snapshot).
        held = {s: tags for s in doomed if self._may_be_held(scan, s) and (tags := self.zfs.holds(s))}
        if held:
            which = "; ".join(f"{s} (holds: {', '.join(sorted(t))})" for s, t in held.items())
            what = wanted[0] if len(wanted) == 1 else ", ".join(order)
            why = ""
            if any("bootenv-send" in t for t in held.values()):
                # transfer.py's HOLD_TAG: the base the next incremental send needs
                why = "; bootenv-send keeps the base of the next incremental 'bootenv send' (release it with zfs release bootenv-send SNAPSHOT; the bookmark stays a base)"
            raise Refused(f"cannot destroy {what}: snapshot has user holds: {which}{why}")

        def menus() -> None:
            with self.bootloader.batch():  # GRUB: one update-grub for the whole set
                for name in order:
                    self.bootloader.post_destroy(name)

        plan.add("update the boot menu", menus, kind=Kind.BOOTLOADER)
        self._end_operation(plan)
        plan.result = bes[wanted[0]] if single else [bes[n] for n in order]
        if reclaim:
            try:
                plan.reclaim = self.reclaim(order, scan)
            except ZfsError as exc:  # the figure is for people: never a reason not to destroy
                if strict:
                    raise
                plan.notes.append(f"cannot tell what this frees: {exc}")
        return plan

    def _refuse_outside_dependants(self, scan: Scan, trees: dict[str, list[str]]) -> None:
        """Refuse, before any step, a BE whose snapshots have clones outside
        the BE root (the listing's `clones` names them): bootenv never
        promotes or destroys a dataset there, so ZFS would refuse the
        origin snapshot halfway through the destroy."""
        for name, tree in trees.items():
            for ds in tree:
                for snap in scan.snapshots.get(ds, []):
                    outside = [c for c in (snap.props.get("clones") or "").split(",") if c and not scan.in_roots(c)]
                    if outside:
                        raise Refused(
                            f"cannot destroy {name}: {', '.join(outside)} outside {self.be_root} was cloned from "
                            f"{snap.name} (destroy it or 'zfs promote' it first)"
                        )

    def _plan_mark_destroying(self, plan: Plan, be: BootEnv) -> None:
        """First of all, mark the BE `destroying`: a destroy killed halfway
        leaves a BE that says it is not whole (list, status, repair), not
        one that looks complete with its `var` gone."""
        old = be.state

        def undo() -> None:
            if old is None:
                self.zfs.inherit(be.dataset, PROP_STATE)
            else:
                self.zfs.set_props(be.dataset, {PROP_STATE: old})

        plan.add(f"mark {be.name} {STATE_DESTROYING}", lambda: self.zfs.set_props(be.dataset, {PROP_STATE: STATE_DESTROYING}), undo=undo, kind=Kind.MARK)

    @staticmethod
    def _may_be_held(scan: Scan, snapshot: str) -> bool:
        row = scan.datasets.get(snapshot)
        refs = row.props.get("userrefs") if row is not None else None
        return not (refs is not None and refs.isdigit() and int(refs) == 0)

    def _destroy_order(self, scan: Scan, trees: dict[str, list[str]]) -> list[str]:
        """The BEs of a set in an order that destroys a clone before the BE
        its origin snapshot belongs to (newest first among the free)."""
        owner = {ds: name for name, tree in trees.items() for ds in tree}
        needs: dict[str, set[str]] = {name: set() for name in trees}  # name -> BEs that must go first
        for name, tree in trees.items():
            for ds in tree:
                origin = scan.datasets[ds].origin
                other = owner.get(origin.split("@", 1)[0]) if origin else None
                if other and other != name:
                    needs[other].add(name)
        order: list[str] = []
        left = sorted(trees, key=lambda n: scan.datasets[self.dataset_of(n)].createtxg, reverse=True)
        while left:
            free = next((n for n in left if not (needs[n] - set(order))), left[0])
            order.append(free)
            left.remove(free)
        return order

    def protected(self, scan: Scan) -> dict[str, str]:
        """The BEs nothing may destroy (name -> why): running, next boot,
        the pool's bootfs, last good, in a trial boot. Two reads for all."""
        out: dict[str, str] = {}
        root = self.zfs.get_props(self.be_root, [PROP_TRIAL_BE, PROP_TRIAL_FALLBACK, PROP_LAST_GOOD])
        bootfs = self.zfs.pool_get(self.pool, "bootfs")
        for name, why in (
            (root.get(PROP_LAST_GOOD), "last good (the last confirmed boot)"),
            (root.get(PROP_TRIAL_FALLBACK), "trial boot"),
            (root.get(PROP_TRIAL_BE), "trial boot"),
            (self.name_of(bootfs) if bootfs and is_be_top(self.be_root, bootfs) else None, "the default (bootfs)"),
            (self.name_of(scan.next_boot) if scan.next_boot else None, "boots next"),
            (self.name_of(scan.running) if scan.running else None, "running"),
        ):
            if name:
                out[name] = why
        return out

    def held(self, scan: Scan) -> dict[str, str]:
        """The BEs prune must skip because a snapshot of theirs has a user
        hold (bootenv send keeps the base of the next incremental so), from
        the listing's userrefs (a scan with snapshots; {} without)."""
        out: dict[str, str] = {}
        for top in scan.tops():
            for ds in scan.members(top.name):
                snap = next((s for s in scan.snapshots.get(ds, []) if s.number("userrefs") > 0), None)
                if snap is not None:
                    out[self.name_of(top.name) or top.name] = f"{snap.name} is held (zfs holds {snap.name}; bootenv send keeps the base of the next incremental so)"
                    break
        return out

    def _refuse_destroy(self, be: BootEnv, top: Dataset, protected: Optional[dict[str, str]] = None) -> None:
        """Refuse to destroy the running BE, the next boot, the pool's
        bootfs and a BE that takes part in a trial boot. (Last good is
        protected from prune only: destroy names a BE explicitly.)"""
        name = be.name
        if be.running:
            raise Refused(f"{name} is the running boot environment; boot another one first")
        if be.active:
            raise Refused(f"{name} boots next; activate another boot environment first")
        if protected is None:
            bootfs = self.zfs.pool_get(self.pool, "bootfs")
            is_default = bootfs == top.name
            trial = set(self.zfs.get_props(self.be_root, [PROP_TRIAL_BE, PROP_TRIAL_FALLBACK]).values())
        else:
            is_default = protected.get(name) == "the default (bootfs)"
            trial = {name} if protected.get(name) == "trial boot" else set()
        if is_default:
            raise Refused(f"{name} is the default boot environment (bootfs); activate another one first")
        if name in trial:
            raise Refused(f"{name} takes part in a trial boot; confirm it or run 'bootenv fallback' first")

    def _plan_promotions(self, plan: Plan, scan: Scan, tree: list[str], members: set[str]) -> tuple[dict[str, Dataset], dict[str, str]]:
        """Phase 1: decide every promotion before acting. Per dataset of the
        BE, the dependent clone (outside this BE) of the newest snapshot
        takes the history. Return (our dataset -> the snapshot its heir was
        cloned from, our dataset -> the heir). `members`: every dataset
        the plan destroys (no heir among them)."""
        promotions: dict[str, Dataset] = {}
        heirs: dict[str, str] = {}
        for ds in tree:
            dependents = [
                (snap, clone)
                for snap in scan.snapshots.get(ds, [])
                for clone in scan.clones.get(snap.name, [])
                if clone not in members
            ]
            if dependents:
                snap, heir = max(dependents, key=lambda pair: pair[0].createtxg)
                self._check_promote_names(scan, ds, snap, heir)
                promotions[ds] = snap
                heirs[ds] = heir
                plan.add(
                    f"promote {heir} (it takes the snapshots of {ds} up to @{snap.snapname})",
                    lambda h=heir: self.zfs.promote(h),
                    kind=Kind.PROMOTE,
                )
        return promotions, heirs

    def _plan_own_destroys(self, plan: Plan, scan: Scan, tree: list[str], promotions: dict[str, Dataset]) -> list[str]:
        """Phase 2: the BE's own snapshots that stay behind (newer than the
        promoted one) and its datasets, deepest first. Return the
        snapshots destroyed, as named now (to check holds)."""
        doomed: list[str] = []
        for ds in reversed(tree):
            moved_upto = promotions[ds].createtxg if ds in promotions else -1
            own = [s for s in scan.snapshots.get(ds, []) if s.createtxg > moved_upto]
            for snap in reversed(own):
                doomed.append(snap.name)
                plan.add(f"destroy snapshot {snap.name}", lambda s=snap.name: self.zfs.destroy(s), destroys=True, kind=Kind.DESTROY)
            if scan.datasets[ds].props.get("mounted") == "yes":
                plan.add(f"unmount {ds}", lambda d=ds: self.zfs.unmount(d), kind=Kind.UNMOUNT)
            plan.add(f"destroy {ds}", lambda d=ds: self.zfs.destroy(d), destroys=True, kind=Kind.DESTROY)
        return doomed

    def _plan_leftover_origins(
        self, plan: Plan, scan: Scan, tree: list[str], promotions: dict[str, Dataset], heirs: dict[str, str], members: set[str]
    ) -> list[str]:
        """Phase 3: the origin snapshot each dataset leaves behind (after a
        promotion, the heir's copy of the snapshot it was cloned from),
        destroyed if bootenv took it and no other BE depends on it. Return
        the snapshots destroyed, as named now."""
        doomed: list[str] = []
        for ds in tree:
            if ds in promotions:
                snap = promotions[ds]
                leftover = f"{heirs[ds]}@{snap.snapname}"
                ours = snap.user(PROP_SNAPSHOT) == "yes"
                others = [c for c in scan.clones.get(snap.name, []) if c not in members and c != heirs[ds]]
            else:
                origin = scan.datasets[ds].origin
                if not origin or origin not in scan.datasets or origin.split("@")[0] in members:
                    continue  # not a clone, or cloned from outside the BE root
                leftover = origin
                ours = scan.datasets[origin].user(PROP_SNAPSHOT) == "yes"
                others = [c for c in scan.clones.get(origin, []) if c not in members]
            if others:
                continue  # another BE still depends on it
            if not ours:
                plan.notes.append(f"keeping {leftover}: bootenv did not take it")
                continue
            doomed.append(promotions[ds].name if ds in promotions else leftover)
            plan.add(
                f"destroy snapshot {leftover} (no boot environment needs it any more)",
                lambda s=leftover: self.zfs.destroy(s),
                destroys=True,
                kind=Kind.DESTROY,
            )
        return doomed

    def _check_promote_names(self, scan: Scan, ds: str, snap: Dataset, heir: str) -> None:
        """Promote fails if the heir already has a snapshot named like one
        that would move to it; refuse before anything changes."""
        moving = {s.snapname for s in scan.snapshots.get(ds, []) if s.createtxg <= snap.createtxg}
        taken = {s.snapname for s in scan.snapshots.get(heir, [])}
        clash = moving & taken
        if clash:
            raise Refused(
                f"cannot hand the snapshots of {ds} to {heir}: both have snapshots named "
                + ", ".join(sorted(clash))
                + " (rename one first)"
            )

    # ------------------------------------------------------------ rename, describe

    def plan_rename(self, old: str, new: str) -> Plan:
        """Plan renaming a BE (ZFS renames its descendants and snapshots and
        re-points clones). The running BE is refused: the kernel command
        line and the mount table name it. Raise BeNotFound / BeExists."""
        scan = self.scan(snapshots=True)
        top = self._top(scan, old)
        validate_be_name(new)
        target = self.dataset_of(new)
        members = scan.members(top.name)
        renamed = [self.counterpart(ds, new) for ds in members]
        renamed += [self.counterpart(s.name, new) for ds in members for s in scan.snapshots.get(ds, [])]
        check_dataset_names(renamed, f"cannot rename {old} to {new}")
        if target in scan.datasets or self.zfs.exists(target):
            raise BeExists(f"boot environment {new!r} already exists")
        boot = scan.boot_tree(top.name)[:1]
        if boot and self.zfs.exists(self.boot_dataset_of(new)):
            raise BeExists(f"{self.boot_dataset_of(new)} already exists: the boot half of a boot environment {new!r}")
        if top.name == scan.running:
            raise Refused(f"{old} is the running boot environment; it cannot be renamed while running")
        plan = Plan(f"Rename boot environment {old} to {new}")
        if boot:
            self._begin_operation(plan, f"rename {old} {new}")  # repair finishes a half-done pair
        # Its halves one after the other (a rename cannot span pools): the
        # root pool's first, so a BE is always listed under one name.
        for ds in [top.name, *boot]:
            plan.add(
                f"rename {ds} to {self.counterpart(ds, new)}",
                lambda d=ds: self.zfs.rename(d, self.counterpart(d, new)),
                # A later step failing (bootfs, the boot menu) renames it back:
                # the BE keeps the name bootfs and the bootloader know.
                undo=lambda d=ds: self.zfs.rename(self.counterpart(d, new), d),
                kind=Kind.RENAME,
            )
        if self.zfs.pool_get(self.pool, "bootfs") == top.name:
            plan.add(
                f"set {self.pool} bootfs={target}",
                lambda: self.set_bootfs(target),
                kind=Kind.SET_BOOTFS,
            )
        plan.add("update the boot menu", lambda: self.bootloader.post_rename(old, new), kind=Kind.BOOTLOADER)
        if boot:
            self._end_operation(plan)
        return plan

    def plan_describe(self, name: str, title: str) -> Plan:
        """Plan setting a BE's title. Raise BeNotFound."""
        scan = self.scan()
        top = self._top(scan, name)
        validate_title(title)
        plan = Plan(f"Set the title of {name}")
        plan.add(
            f"set {PROP_TITLE}={title!r} on {top.name}",
            lambda: self.zfs.set_props(top.name, {PROP_TITLE: title}),
            kind=Kind.SET_PROPS,
        )
        return plan

    def plan_keep(self, name: str, keep: bool = True) -> Plan:
        """Plan pinning a BE (prune never takes it) or unpinning it."""
        scan = self.scan()
        top = self._top(scan, name)
        if keep:
            plan = Plan(f"Keep {name} (prune never takes it)")
            plan.add(f"set {PROP_KEEP}=yes on {top.name}", lambda: self.zfs.set_props(top.name, {PROP_KEEP: "yes"}), kind=Kind.SET_PROPS)
        else:
            plan = Plan(f"Unpin {name} (prune may take it again)")
            if top.user(PROP_KEEP) is None:
                plan.notes.append(f"{name} is not pinned")
            else:
                plan.add(f"clear {PROP_KEEP} on {top.name}", lambda: self.zfs.inherit(top.name, PROP_KEEP), kind=Kind.SET_PROPS)
        return plan

    # ------------------------------------------------------------ rollback

    def rollback_target(self, scan: Optional[Scan] = None) -> tuple[BootEnv, BootEnv, str]:
        """The BE `bootenv rollback` goes back to from the running one, as
        (running, target, why): of the last change's checkpoint (the
        newest BE taken from the running one), the BE the running one
        came from (origin-be) and the BE a rollback to the running one
        came from (so rolling back a rollback returns), the most recent
        event wins; failing all, the generation before the running one.
        Raise Refused when nothing runs here, BeNotFound when there is
        nothing to go back to."""
        scan = scan or self.scan()
        bes = [self._bootenv(scan, top) for top in scan.tops()]
        by_name = {be.name: be for be in bes}
        running = next((be for be in bes if be.running), None)
        if running is None:
            raise Refused("no running boot environment here: nothing to roll back from (use activate)")
        events: list[tuple[int, int, BootEnv, str]] = []  # (when, tie, target, why)
        for be in bes:
            if be.origin_be == running.name and be.name != running.name and be.state != STATE_PENDING:
                events.append((be.created or 0, 1, be, f"the checkpoint taken from {running.name} before its last change"))
        if running.origin_be in by_name and running.origin_be != running.name:
            events.append((running.created or 0, 0, by_name[running.origin_be], f"{running.name} was made from it"))
        if running.rollback_from in by_name and running.rollback_from != running.name:
            events.append((running.rollback_at or 0, 2, by_name[running.rollback_from], f"{running.name} was rolled back to from it"))
        if events:
            _when, _tie, target, why = max(events, key=lambda e: (e[0], e[1], e[2].generation or 0))
            return running, target, why
        if running.generation is not None:
            older = [be for be in bes if be.generation is not None and be.generation < running.generation]
            if older:
                return running, max(older, key=lambda be: be.generation or 0), "the generation before the running one"
        raise BeNotFound(f"nothing to roll back to: no boot environment came before {running.name}")

    def rollback_step(self, plan: Plan, running: BootEnv, target: BootEnv) -> None:
        """Add the step that records the rollback on its target."""
        now = str(int(self.clock()))
        plan.add(
            f"record on {target.name} that it was rolled back to from {running.name}",
            lambda: self.zfs.set_props(target.dataset, {PROP_ROLLBACK_FROM: running.name, PROP_ROLLBACK_AT: now}),
            kind=Kind.ROLLBACK,
        )

    def plan_rollback(self) -> Plan:
        """Plan going back to rollback_target(): activate it and record
        where it came from. The plan's notes say what the next boot
        changes. Raise Refused / BeNotFound."""
        scan = self.scan()
        running, target, why = self.rollback_target(scan)
        plan = self.plan_activate(target.name)
        plan.summary = f"Roll back from {running.name} to {target.name}"
        plan.notes[:0] = rollback_notes(running, target, why)
        self.rollback_step(plan, running, target)
        return plan

    # ------------------------------------------------------------ prune

    def policy(self, overrides: Optional[dict[str, str]] = None) -> Policy:
        """The retention policy of bootenv.conf, with `overrides` (the same
        keys, from the command line) winning. Raise UsageError."""
        from . import config

        return Policy.from_settings({**config.read(), **(overrides or {})})

    @staticmethod
    def rollback_notes(running: BootEnv, target: BootEnv, why: str) -> list[str]:
        return rollback_notes(running, target, why)

    def boot_pool_space(self) -> Optional[tuple[str, int, int]]:
        """Where /boot is paired: (boot pool, bytes available to its
        datasets, pool size), for `list` (a boot pool is small: zsys #231).
        None otherwise or unknown."""
        if not self.boot_pool or not self.boot_root:
            return None
        size = _int(self.zfs.pool_get(self.boot_pool, "size"))
        available = _int(self.zfs.get_props(self.boot_root, ["available"]).get("available"))
        return (self.boot_pool, available, size) if size and available is not None else None

    def free_percent(self) -> Optional[float]:
        """The pool's free space in percent of its size (None if unknown)."""
        size, free = self.zfs.pool_get(self.pool, "size"), self.zfs.pool_get(self.pool, "free")
        if not (size and free and size.isdigit() and free.isdigit() and int(size)):
            return None
        return 100.0 * int(free) / int(size)

    def prune_decisions(
        self, policy: Policy, scan: Optional[Scan] = None, also_protect: Optional[dict[str, str]] = None
    ) -> tuple[list[Decision], bool, Optional[float]]:
        """(a decision per BE, newest first; space pressure; free %)."""
        scan = scan or self.scan()
        bes = [self._bootenv(scan, top) for top in scan.tops()]
        free = self.free_percent()
        protected = {**self.held(scan), **(also_protect or {}), **self.protected(scan)}
        decisions, pressure = decide(bes, policy, now=int(self.clock()), protected=protected, free_percent=free)
        return decisions, pressure, free

    def auto_prune(self, just_taken: str) -> Optional[str]:
        """The automatic retention after a hook or apt checkpoint: prune
        by bootenv.conf's policy (never `just_taken`), when auto_prune is
        on. Return the one line that says what went (None: nothing to
        say). Raise BootenvError, ZfsError (the caller says it, apt goes on)."""
        policy = self.policy()
        if not policy.auto:
            return None
        plan = self.plan_prune(policy, reclaim=False, also_protect={just_taken: "just taken"}, limit=policy.auto_max)
        result: PruneResult = plan.result  # type: ignore[assignment]
        left = sum(d.reason.startswith("over the cap") for d in result.decisions)
        later = f"; {left} more at the next runs (auto_prune_max {policy.auto_max})" if left else ""
        space = (
            f" (space: {result.free_percent:.0f}% of {self.pool} free, under the floor of {policy.space_floor}%: down to {policy.keep_min})"
            if result.pressure and result.free_percent is not None
            else ""
        )
        if not result.destroyed:
            return f"bootenv: retention: nothing to prune{space}" if space else None
        plan.execute()
        return f"bootenv: retention: destroyed {len(result.destroyed)} old checkpoint{'s' if len(result.destroyed) != 1 else ''}: {', '.join(result.destroyed)}{later}{space}"

    def plan_prune(
        self,
        policy: Optional[Policy] = None,
        *,
        reclaim: bool = True,
        strict: bool = False,
        also_protect: Optional[dict[str, str]] = None,
        only: Optional[list[str]] = None,
        limit: int = 0,
    ) -> Plan:
        """Plan destroying what the retention policy lets go, as one
        destroy plan (dependants promoted as destroy does). `plan.result`
        is a PruneResult; the plan has no step when nothing goes. `limit`:
        at most that many go, the oldest (retention.cap; 0: all)."""
        policy = policy or self.policy()
        scan = self.scan(snapshots=True)
        decisions, pressure, free = self.prune_decisions(policy, scan, also_protect)
        if only is not None:
            # Selectors (names, ranges, ages) narrow what may go; the policy
            # and every refusal still decide.
            chosen = set(self.select_many(only, scan))
            decisions = [d if d.be.name in chosen or d.action != DESTROY else Decision(d.be, KEEP, "not selected") for d in decisions]
        decisions = cap(decisions, limit)
        doomed = [d.be.name for d in decisions if d.action == DESTROY]
        notes = []
        if pressure:
            notes.append(
                f"space pressure: {free:.0f}% of pool {self.pool} is free, below the floor of {policy.space_floor}%: "
                f"pruning down to the newest {policy.keep_min} automatic checkpoints"
            )
        if doomed:
            plan = self.plan_destroy(doomed, scan=scan, summary=f"Prune {len(doomed)} boot environment{'s' if len(doomed) != 1 else ''}", reclaim=reclaim, strict=strict)
        else:
            plan = Plan("Prune: nothing to destroy")
        plan.notes[:0] = notes
        plan.result = PruneResult(decisions, pressure, free, doomed)
        return plan

    # ------------------------------------------------------------ space

    def reclaim_alone(self, scan: Optional[Scan] = None) -> dict[str, Optional[int]]:
        """What destroying each BE alone frees (list -o reclaim), from one
        listing with snapshots and no further query: its own `used` plus
        its origin snapshot's `used` when that goes too (None when its
        destroy would promote a dependant)."""
        scan = scan or self.scan(snapshots=True)
        out: dict[str, Optional[int]] = {}
        for top in scan.tops():
            name = self.name_of(top.name) or top.name
            out[name] = self.reclaim([name], scan, query=False)[0][name]
        return out

    def reclaim(self, names: list[str], scan: Optional[Scan] = None, *, query: bool = True) -> tuple[dict[str, Optional[int]], Optional[int]]:
        """What destroying BEs `names` together frees, as ZFS computes it
        for that set (one space query per pool): (per BE, total). A BE
        whose destroy promotes a dependant (its history moves, it does not
        go) has no exact figure of its own (None), and makes the total
        None too."""
        scan = scan or self.scan(snapshots=True)
        trees = {name: scan.members(self.dataset_of(name)) for name in names}
        members = {ds for tree in trees.values() for ds in tree}
        sets: dict[str, Optional[list[str]]] = {}
        for name, tree in trees.items():
            doomed: list[str] = []
            for ds in tree:
                for snap in scan.snapshots.get(ds, []):
                    if any(c not in members for c in scan.clones.get(snap.name, [])):
                        sets[name] = None
                        break
                    doomed.append(snap.name)
                if sets.get(name, 1) is None:
                    break
                doomed.append(ds)
                origin = scan.datasets[ds].origin
                if origin and origin in scan.datasets and origin.split("@")[0] not in members:
                    if scan.datasets[origin].user(PROP_SNAPSHOT) == "yes" and all(c in members for c in scan.clones.get(origin, [])):
                        doomed.append(origin)
            if sets.get(name, 1) is not None:
                sets[name] = doomed
        exact = [n for n in names if sets[n] is not None]
        whole = [x for n in exact for x in sets[n]]  # type: ignore[union-attr]
        total = self.zfs.destroy_preview(whole) if query and whole and len(exact) == len(names) else None
        per: dict[str, Optional[int]] = {}
        for n in names:
            doomed = sets[n]
            if doomed is None:
                per[n] = None
            else:
                # Alone: its own `used` (data, snapshots, children) plus
                # what its origin snapshot alone holds if that goes too.
                tops = [self.dataset_of(n), *scan.boot_tree(self.dataset_of(n))[:1]]  # and its boot half's
                per[n] = sum(scan.datasets[t].number("used") for t in tops) + sum(
                    scan.datasets[x].number("used") for x in doomed if "@" in x and x.split("@")[0] not in members)
        if len(names) == 1:
            per[names[0]] = total if total is not None else per[names[0]]
        return per, total

    # ------------------------------------------------------------ mount

    def _mount_path(self, name: str) -> str:
        return os.path.join(self.mount_base, name)

    def mount(self, name: str, path: Optional[str] = None, *, private: bool = False, readonly: bool = False) -> str:
        """Mount a BE's whole tree at `path` (default /run/bootenv/NAME),
        children at their place below it. Return the path. Raise Refused
        if it is running or already mounted.

        `private` (the sandbox chroot, a bootloader's look inside a BE):
        first move bootenv into a mount namespace of its own, so no other
        namespace ever receives these mounts and they vanish with bootenv
        even if it is killed (zfs/mountns.py). Without it (`bootenv
        mount`) the mount is made in the caller's namespace, for the
        admin's shell to see; service namespaces that copy it are slaves
        (systemd's propagation) and receive the unmount, and `unmount`
        checks that none kept it."""
        if private:
            try:
                self.zfs.private_mounts()
            except ZfsError as exc:
                raise OperationFailed(f"mount {name}: {exc}") from exc
        scan = self.scan()
        top = self._top(scan, name)
        if top.name == scan.running:
            raise Refused(f"{name} is the running boot environment; it is mounted at /")
        if top.props.get("mounted") == "yes":
            raise Refused(f"{name} is already mounted")
        path = path or self._mount_path(name)
        self._make_mount_dir(name, path)
        top_mp = top.props.get("mountpoint", "/")
        done: list[str] = []
        try:
            for ds in scan.members(top.name):
                row = scan.datasets[ds]
                if row.props.get("canmount") == "off":
                    continue
                where = self._child_path(path, top_mp, row.props.get("mountpoint", ""), ds, top.name)
                self._make_mount_dir(name, where)
                if readonly:
                    self.zfs.mount(ds, where, readonly=True)
                else:
                    self.zfs.mount(ds, where)
                done.append(ds)
        except (ZfsError, OperationFailed) as exc:
            for ds in reversed(done):
                self.zfs.unmount(ds)
            if isinstance(exc, OperationFailed):
                raise
            raise OperationFailed(f"mount {name}: {exc}") from exc
        return path

    @staticmethod
    def _make_mount_dir(name: str, path: str) -> None:
        """Make the directory a BE is mounted on. Raise OperationFailed when
        `path` cannot be one (a regular file, a place under /proc)."""
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise OperationFailed(f"mount {name}: cannot mount on {path}: {exc.strerror or exc}") from exc
        if not os.path.isdir(path):
            raise OperationFailed(f"mount {name}: cannot mount on {path}: not a directory")

    @staticmethod
    def _child_path(base: str, top_mp: str, mountpoint: str, ds: str, top: str) -> str:
        """Where a dataset of a BE goes when the BE is mounted at `base`:
        its mountpoint relative to the top's, or its relative name."""
        if ds == top:
            return base
        if mountpoint.startswith("/") and top_mp.startswith("/"):
            rel = os.path.relpath(mountpoint, top_mp)
            if not rel.startswith(".."):
                return os.path.normpath(os.path.join(base, rel))
        if not ds.startswith(top + "/"):  # the boot half, mountpoint legacy or none: it is /boot
            return os.path.join(base, "boot")
        return os.path.join(base, ds[len(top) + 1 :])

    def unmount(self, name: str) -> None:
        """Unmount a BE's tree, deepest first. Raise Refused for the running BE."""
        scan = self.scan()
        top = self._top(scan, name)
        if top.name == scan.running:
            raise Refused(f"{name} is the running boot environment; it cannot be unmounted")
        mounted = [ds for ds in scan.members(top.name) if scan.datasets[ds].props.get("mounted") == "yes"]
        if not mounted:
            raise Refused(f"{name} is not mounted")
        try:
            for ds in reversed(mounted):
                self.zfs.unmount(ds)
        except ZfsError as exc:
            raise OperationFailed(f"unmount {name}: {exc}") from exc



def _int(value: Optional[str]) -> Optional[int]:
    return int(value) if value and value.isdigit() else None

