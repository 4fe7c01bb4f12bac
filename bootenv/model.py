"""Boot environments as the engine hands them out: frozen values, plus the
rules for names. Properties bootenv keeps are ZFS user properties in the
`org.bootenv:` namespace (state lives in the pool, never in a file)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidBeName, UsageError

PROP_NS = "org.bootenv:"
PROP_TITLE = PROP_NS + "title"
PROP_CREATED = PROP_NS + "created"  # seconds since the epoch, from the engine's clock
PROP_KIND = PROP_NS + "kind"  # manual | apt | hook
PROP_ORIGIN_BE = PROP_NS + "origin-be"  # the BE this one was cloned from
PROP_COMMAND = PROP_NS + "command"  # the command line that made it
PROP_STATE = PROP_NS + "state"  # one of STATES
PROP_PACKAGES = PROP_NS + "packages"  # what an apt run changed (compact)
# On snapshots: marks a snapshot bootenv took, so bootenv may remove it
# once nothing depends on it; snapshots without it are the admin's.
PROP_SNAPSHOT = PROP_NS + "snapshot"
# On the BE root dataset: a trial boot in progress (trial.py), which the
# engine must not destroy the BEs of.
PROP_TRIAL_BE = PROP_NS + "trial-be"  # the BE booted once on trial
PROP_TRIAL_FALLBACK = PROP_NS + "trial-fallback"  # the default it comes back to
PROP_LAST_GOOD = PROP_NS + "last-good"  # the BE the last confirmed boot ran (trial.py)
# On the BE root: the operation bootenv is in the middle of ("create NAME",
# "destroy NAME,..."), set by its first step and cleared by its last. Left
# set, it is residue of a killed run that a listing of BEs alone shows
# (stray snapshots of a create killed after its snapshot), so `list` can
# say "run bootenv repair" without listing snapshots. Inherited by every
# BE while set: read it on the BE root's row only.
PROP_OPERATION = PROP_NS + "operation"
# On a snapshot `bootenv send` sent whole: when (epoch seconds). It is a
# base of increments (by its bookmark once superseded), never residue.
PROP_SENT = PROP_NS + "sent"
# On a BE: its generation, given once at create from the BE root's counter.
PROP_GENERATION = PROP_NS + "generation"
# On the BE root: the next generation to give (never reused: it survives
# destroying the newest BE). Named apart from PROP_GENERATION because user
# properties on the BE root are inherited by every BE under it.
PROP_NEXT_GENERATION = PROP_NS + "next-generation"
# On a BE: `yes` pins it (bootenv keep): prune never takes it.
PROP_KEEP = PROP_NS + "keep"
# On a BE: set by `bootenv rollback` on the BE it goes back to: the BE it
# came back from and when (epoch seconds), so rolling back a rollback returns.
PROP_ROLLBACK_FROM = PROP_NS + "rollback-from"
PROP_ROLLBACK_AT = PROP_NS + "rollback-at"

# On a BE's top: what its boot menu entry needs without mounting it (the
# GRUB driver and contrib/grub.d/42_bootenv, boot/kernels.py):
# "ref=REFERENCED boot=VERSION/INITRD,... modules=VERSION,...", valid while
# the BE's `referenced` is still REFERENCED.
PROP_KERNELS = PROP_NS + "kernels"

USER_PROPS: tuple[str, ...] = (
    PROP_TITLE,
    PROP_CREATED,
    PROP_KIND,
    PROP_ORIGIN_BE,
    PROP_COMMAND,
    PROP_STATE,
    PROP_PACKAGES,
    PROP_SNAPSHOT,
    PROP_KERNELS,
    PROP_GENERATION,
    PROP_KEEP,
    PROP_ROLLBACK_FROM,
    PROP_ROLLBACK_AT,
    PROP_OPERATION,
)

KINDS = ("manual", "apt", "hook")
# pending: a checkpoint whose create never finished (not whole: not
#   activatable; destroy it). unfinished-apt: a whole checkpoint taken
#   before an apt run that was never seen to finish (the hook's post-invoke
#   never ran, or bootenv was killed while apt ran): exactly what an admin
#   rolls back to. complete / failed: the apt run after it finished, well
#   or badly (a failed in-place run's checkpoint is whole, too).
STATE_PENDING = "pending"
STATE_UNFINISHED_APT = "unfinished-apt"
STATE_COMPLETE = "complete"
STATE_FAILED = "failed"
# destroying: a destroy began (marked before its first step): the BE may
#   miss datasets or snapshots; finish it with destroy (or repair).
STATE_DESTROYING = "destroying"
STATES = (STATE_PENDING, STATE_UNFINISHED_APT, STATE_COMPLETE, STATE_FAILED, STATE_DESTROYING)
# The states that say a crash (or a kill) interrupted bootenv: not whole.
NOT_WHOLE = (STATE_PENDING, STATE_DESTROYING)

# ZFS allows [A-Za-z0-9_.:-] in a component; we also refuse a leading '-'
# (it reads as an option) and a leading '.' (hidden, and '.'/'..' are invalid).
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
# ZFS_MAX_DATASET_NAME_LEN is 256 including the pool path and the
# terminating NUL; keep the BE component well inside it. The full names a
# command would make (`pool/ROOT/name/var@snapshot`) are checked against
# MAX_DATASET_NAME_LEN by check_dataset_names before anything changes.
MAX_NAME_LEN = 128
MAX_DATASET_NAME_LEN = 255  # bytes, without the NUL


def check_dataset_names(names, what: str) -> None:
    """Given the full dataset/snapshot names an operation would create,
    raise InvalidBeName if ZFS would refuse one as too long."""
    for full in names:
        size = len(full.encode("utf-8"))
        if size > MAX_DATASET_NAME_LEN:
            raise InvalidBeName(
                f"{what}: the dataset name {full} would be {size} bytes, over ZFS's limit of "
                f"{MAX_DATASET_NAME_LEN}: choose a shorter name"
            )


def validate_be_name(name: str) -> str:
    """Given a BE name from the user, return it. Raise InvalidBeName with the
    reason if ZFS would reject it or it could be mistaken for something else."""
    if not name:
        raise InvalidBeName("boot environment name is empty")
    if len(name) > MAX_NAME_LEN:
        raise InvalidBeName(f"boot environment name is longer than {MAX_NAME_LEN} characters")
    if name.startswith("-"):
        raise InvalidBeName(f"boot environment name may not start with '-': {name!r}")
    for bad, what in (("/", "'/'"), ("@", "'@'"), ("%", "'%'"), ("#", "'#'")):
        if bad in name:
            raise InvalidBeName(f"boot environment name may not contain {what}: {name!r}")
    if any(ch.isspace() for ch in name):
        raise InvalidBeName(f"boot environment name may not contain spaces: {name!r}")
    if not _NAME_RE.match(name):
        raise InvalidBeName(
            f"invalid boot environment name {name!r}: use letters, digits and _ . : -"
        )
    return name


def be_dataset(be_root: str, name: str) -> str:
    """Given the BE root and a BE name, return the BE's top dataset."""
    return f"{be_root}/{name}"


def be_name_of(be_root: str, dataset: str) -> str | None:
    """Given the BE root and any dataset or snapshot name, return the name
    of the BE it belongs to (`rpool/ROOT/x/var@s` -> `x`), or None when it
    is not under the BE root."""
    prefix = be_root + "/"
    if not dataset.startswith(prefix):
        return None
    rest = dataset[len(prefix) :].split("@", 1)[0]
    return rest.split("/", 1)[0] or None


def is_be_top(be_root: str, dataset: str) -> bool:
    """Whether `dataset` is a BE: a filesystem directly under the BE root."""
    prefix = be_root + "/"
    rest = dataset[len(prefix) :] if dataset.startswith(prefix) else ""
    return bool(rest) and "/" not in rest and "@" not in rest


MAX_TITLE_LEN = 1024  # well inside ZFS's 8 KiB user-property value limit


def validate_title(title: str) -> str:
    """Given a BE title from the user, return it. Raise UsageError if it
    would break the one-line-per-BE outputs (-H, the GRUB menu)."""
    if any(ch in title for ch in "\t\n\r") or not title.isprintable():
        raise UsageError("a title may not contain tabs, newlines or control characters")
    if len(title) > MAX_TITLE_LEN:
        raise UsageError(f"a title is at most {MAX_TITLE_LEN} characters")
    return title


def make_title(text: str) -> str:
    """Given generated text (a command line), return a valid title:
    control characters become spaces, and it is cut to MAX_TITLE_LEN."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return clean if len(clean) <= MAX_TITLE_LEN else clean[: MAX_TITLE_LEN - 3] + "..."


@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a BE's top dataset."""

    name: str  # full ZFS name, pool/ROOT/be@snap
    createtxg: int
    used: int
    clones: tuple[str, ...]  # full names of filesystems cloned from it
    holds: int  # number of user holds (0 unless asked for)
    ours: bool  # taken by bootenv

    @property
    def snapname(self) -> str:
        return self.name.split("@", 1)[1]


@dataclass(frozen=True)
class BootEnv:
    """A boot environment: a filesystem directly under the BE root, with its
    descendants (a deep BE), as one listing saw it."""

    name: str  # the BE name, the last component
    dataset: str  # full ZFS name
    active: bool  # A: boots next
    running: bool  # C: mounted at / now
    createtxg: int
    created: int | None  # seconds since the epoch (org.bootenv:created or creation)
    used: int  # the top dataset's `used`: its data, snapshots and children
    referenced: int
    origin: str | None  # origin snapshot of the top dataset, if a clone
    origin_be: str | None  # the BE name that origin belongs to
    title: str
    kind: str | None
    command: str | None
    state: str | None
    mounted: bool  # mounted now (at / when running, else by `bootenv mount`)
    children: tuple[str, ...]  # descendant datasets (a deep BE)
    kernels: str | None = None  # org.bootenv:kernels: what its boot menu entry needs
    generation: int | None = None  # org.bootenv:generation (None: made before generations)
    keep: bool = False  # pinned (bootenv keep): prune never takes it
    ours: bool = True  # made by bootenv (it carries org.bootenv: properties)
    rollback_from: str | None = None
    rollback_at: int | None = None
    # The dataset whose key it uses (natively encrypted; its checkpoints
    # are clones under the same root: no new key, the same prompt).
    encryption_root: str | None = None
    # Its half on the boot pool (bpool/BOOT/NAME and below, top first)
    # where /boot is a dataset of another pool paired with the BE; () else.
    boot: tuple[str, ...] = ()

    @property
    def boot_dataset(self) -> str | None:
        return self.boot[0] if self.boot else None

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every dataset of the BE: its tree on the root pool, then its boot half."""
        return (self.dataset, *self.children, *self.boot)

    @property
    def encrypted(self) -> bool:
        return self.encryption_root is not None

    @property
    def flags(self) -> str:
        return ("A" if self.active else "") + ("C" if self.running else "")


def human_size(n: int) -> str:
    """Bytes the way `zfs list` prints them: 512, 12K, 1.50M, 12.3G."""
    if n < 1024:
        return f"{n}B" if n else "0B"
    value = float(n)
    for unit in "KMGTPE":
        value /= 1024
        if value < 1024 or unit == "E":
            if value < 10:
                return f"{value:.2f}".rstrip("0").rstrip(".") + unit
            if value < 100:
                return f"{value:.1f}".rstrip("0").rstrip(".") + unit
            return f"{value:.0f}{unit}"
    raise AssertionError("unreachable")
