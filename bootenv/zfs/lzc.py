"""`LzcZfs`: the production backend. Mutations go through libzfs_core
(python3-pyzfs) in-process: atomic, typed errors with errno, and no process
per call (a zfs process costs about a second in the QEMU guest). What
libzfs_core lacks (listing, native property get/set, mounting) comes from
`ZfsCommands`.

pyzfs is imported on the first libzfs_core call (the first mutation, or a
read only libzfs_core answers: exists, holds, a channel-program get), never
when the backend is built: a read-only command (`list`, `status`) lists
through `zfs list` and must not pay for cffi parsing libzfs_core's C
declarations (seconds under emulation). Building the backend only checks
that the module can be found (`importable`), without importing it.

Measured on pyzfs 2.3.2: lzc_snapshot/clone/promote/rename/destroy_snaps/
create/exists/channel_program work; lzc_destroy of a filesystem with
snapshots raises DatasetBusy; lzc_set_props, lzc_get_props and
lzc_list_children raise NotImplementedError.
"""

from __future__ import annotations

import errno as _errno
import importlib.util
import sys
from typing import Any, Iterable, Mapping, Sequence

from .base import (
    CrossPool,
    DatasetBusy,
    DatasetExists,
    DatasetNotFound,
    HasDependents,
    InvalidName,
    InvalidProperty,
    NoSpace,
    NotAClone,
    PermissionDenied,
    SnapshotHeld,
    ZfsError,
    ZfsUnavailable,
    pool_of,
)
from .cli import ZfsCommands

# libzfs_core exception class -> ours. Looked up along the exception's MRO,
# so a subclass (SnapshotExists < DatasetExists) finds its own entry first,
# else its base's. Names, not classes: pyzfs is imported lazily.
LZC_ERRORS: dict[str, type[ZfsError]] = {
    "SnapshotIsCloned": HasDependents,
    "SnapshotIsHeld": SnapshotHeld,
    "HoldExists": DatasetExists,
    "HoldNotFound": DatasetNotFound,
    "NotClone": NotAClone,
    "PoolsDiffer": CrossPool,
    "DuplicateSnapshots": InvalidName,  # two snapshots of one filesystem in one call
    "NameInvalid": InvalidName,
    "NameTooLong": InvalidName,
    "WrongParent": InvalidName,
    "DatasetTypeInvalid": InvalidName,
    "DatasetExists": DatasetExists,
    "DatasetNotFound": DatasetNotFound,
    "ParentNotFound": DatasetNotFound,
    "PoolNotFound": DatasetNotFound,
    "DatasetBusy": DatasetBusy,
    "PropertyInvalid": InvalidProperty,
    "PropertyNotSupported": InvalidProperty,
    "NoSpace": NoSpace,
    "QuotaExceeded": NoSpace,
}

# For ZFSGenericError and anything the table misses: by errno.
ERRNO_ERRORS: dict[int, type[ZfsError]] = {
    _errno.ENOENT: DatasetNotFound,
    _errno.EEXIST: DatasetExists,
    _errno.EBUSY: DatasetBusy,
    _errno.EXDEV: CrossPool,
    _errno.EPERM: PermissionDenied,
    _errno.EACCES: PermissionDenied,
    _errno.ENOSPC: NoSpace,
    _errno.EDQUOT: NoSpace,
    _errno.ENAMETOOLONG: InvalidName,
}

# Native properties lzc_clone can set in the same ioctl: string properties
# as bytes, index properties as their uint64 value (what libzfs's
# zfs_valid_proplist would send). Others are set with `zfs set` afterwards.
_INDEX_ON_OFF = {"off": 0, "on": 1}
LZC_NATIVE_PROPS: dict[str, dict[str, int] | None] = {
    "mountpoint": None,  # string
    "canmount": {"off": 0, "on": 1, "noauto": 2},
    "readonly": _INDEX_ON_OFF,
    "atime": _INDEX_ON_OFF,
    "relatime": _INDEX_ON_OFF,
    "devices": _INDEX_ON_OFF,
    "exec": _INDEX_ON_OFF,
    "setuid": _INDEX_ON_OFF,
}


# Channel programs (Lua, run in the kernel through lzc_channel_program):
# in-process property reads and user-property writes, where the zfs command
# would cost a process. argv[1] is the dataset, then property names (get)
# or name, value pairs (set). zfs.sync.set_prop takes user properties only;
# every pair is checked before any is set, so a refusal changes nothing.
_ZCP_GET = b"""
local argv = (...)["argv"]
local out = {}
for i = 2, #argv do
  local value = zfs.get_prop(argv[1], argv[i])
  if value ~= nil then out[argv[i]] = value end
end
return out
"""
_ZCP_SET = b"""
local argv = (...)["argv"]
for i = 2, #argv, 2 do
  local err = zfs.check.set_prop(argv[1], argv[i], argv[i + 1])
  if err ~= 0 then return err end
end
for i = 2, #argv, 2 do
  zfs.sync.set_prop(argv[1], argv[i], argv[i + 1])
end
return 0
"""
# Native properties the get program reads exactly as `zfs get -p` prints
# them (plain numbers); others, and "mounted" (not a kernel property), go
# through ZfsCommands.
ZCP_NATIVE_GET = frozenset(
    {"used", "referenced", "usedbydataset", "usedbysnapshots", "usedbychildren", "createtxg", "creation"}
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def translate(exc: BaseException, name: str | None = None) -> ZfsError:
    """Given a libzfs_core exception, return our ZfsError for it, keeping
    its errno and (when it has one) the name it failed on."""
    inner = exc
    errors = getattr(exc, "errors", None)
    if errors:  # MultipleOperationsFailure: report the first failure
        inner = errors[0]
    err = getattr(inner, "errno", None)
    failed_on = _text(getattr(inner, "name", None)) or name
    message = f"{inner}" if str(inner) else type(inner).__name__
    for klass in type(inner).__mro__:
        cls = LZC_ERRORS.get(klass.__name__)
        if cls is not None:
            return cls(message, failed_on, err)
    cls = ERRNO_ERRORS.get(err, ZfsError) if isinstance(err, int) else ZfsError
    return cls(message, failed_on, err if isinstance(err, int) else None)


def importable(module: str = "libzfs_core") -> bool:
    """Whether `module` can be imported, found without importing it (an
    entry in sys.modules counts: None there means it cannot be)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def load_lzc() -> Any:
    """Import libzfs_core. Raise ZfsUnavailable when it cannot be imported
    or cannot start (no /dev/zfs)."""
    try:
        import libzfs_core as lzc  # python3-pyzfs
    except ImportError as exc:
        raise ZfsUnavailable(f"libzfs_core (python3-pyzfs) is not importable: {exc}") from None
    except Exception as exc:
        # What a failed start raises: ZFSInitializationFailed (no /dev/zfs; a
        # ZFSError of libzfs_core.exceptions, loaded before the failure) or
        # an OSError (cffi cannot load libzfs_core.so). Anything else is a
        # bug to see, not "no ZFS".
        exceptions = sys.modules.get("libzfs_core.exceptions")
        expected = (OSError, *((exceptions.ZFSError,) if exceptions is not None and hasattr(exceptions, "ZFSError") else ()))
        if not isinstance(exc, expected):
            raise
        raise ZfsUnavailable(f"libzfs_core cannot start: {exc}") from None
    return lzc


def _b(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


class LzcZfs(ZfsCommands):
    """ZfsBackend: libzfs_core for mutations, `zfs list`/`zfs get` for reads.

    `lzc` is the libzfs_core module (injectable for tests); without it the
    module is imported on first use (`lzc`). Raise ZfsUnavailable when it
    cannot be found at all; other arguments as for ZfsCommands."""

    def __init__(self, runner=None, *, lzc: Any = None, **kwargs: Any):
        super().__init__(runner, **kwargs)
        if lzc is None and not importable("libzfs_core"):
            raise ZfsUnavailable("libzfs_core (python3-pyzfs) is not importable: no module named 'libzfs_core'")
        self._lzc = lzc

    @property
    def lzc(self) -> Any:
        """The libzfs_core module, imported on first use."""
        if self._lzc is None:
            self._lzc = load_lzc()
        return self._lzc

    @lzc.setter
    def lzc(self, module: Any) -> None:
        self._lzc = module

    def _call(self, func: str, *args: Any, name: str | None = None) -> Any:
        """Call libzfs_core.`func`; translate its exceptions."""
        try:
            return getattr(self.lzc, func)(*args)
        except NotImplementedError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("libzfs_core") or hasattr(exc, "errno"):
                raise translate(exc, name) from None
            raise

    def _refuse(self, func: str, *names: str) -> bool:
        return self.runner.refuse(" ".join((func, *names)))

    # -- reads

    def exists(self, name: str) -> bool:
        return bool(self._call("lzc_exists", _b(name), name=name))

    def holds(self, snapshot: str) -> frozenset[str]:
        held = self._call("lzc_get_holds", _b(snapshot), name=snapshot)
        return frozenset(_text(tag) or "" for tag in held)

    def get_props(self, name: str, props: Sequence[str]) -> dict[str, str]:
        if not props or not all(":" in p or p in ZCP_NATIVE_GET for p in props):
            return super().get_props(name, props)
        try:
            got = self.lzc.lzc_channel_program_nosync(
                _b(pool_of(name)), _ZCP_GET, params=[_b(name), *(_b(p) for p in props)]
            )
        except Exception:  # missing dataset, bad name, old kernel: let zfs say
            return super().get_props(name, props)
        return {_text(k) or "": _text(v) or "" for k, v in (got or {}).items()}

    # -- mutations

    def set_props(self, name: str, props: Mapping[str, str]) -> None:
        if not props or not all(":" in k for k in props):
            return super().set_props(name, props)
        if self._refuse("lzc_channel_program set_prop", name, *(f"{k}={v}" for k, v in props.items())):
            return
        params = [_b(name)]
        for key, value in props.items():
            params += [_b(key), _b(value)]
        try:
            err = self.lzc.lzc_channel_program(_b(pool_of(name)), _ZCP_SET, params=params)
        except Exception:
            err = -1
        if err != 0:  # refused (nothing was set): let zfs report exactly why
            super().set_props(name, props)

    def inherit(self, name: str, prop: str) -> None:
        if ":" in prop and not self.runner.dry_run:
            try:
                self.lzc.lzc_inherit(_b(name), _b(prop))
                return
            except Exception:  # not in this libzfs_core, or refused: let zfs say
                pass
        super().inherit(name, prop)

    def snapshot(self, names: Iterable[str], props: Mapping[str, str] | None = None) -> None:
        names = list(names)
        if not names:
            return
        props = dict(props or {})
        # lzc_snapshot takes user properties only: the kernel refuses others
        # (EINVAL -> PropertyInvalid), as the contract wants.
        if self._refuse("lzc_snapshot", *names):
            return
        self._call(
            "lzc_snapshot",
            [_b(n) for n in names],
            {_b(k): _b(v) for k, v in props.items()},
            name=names[0] if len(names) == 1 else None,
        )

    def clone(self, origin: str, target: str, props: Mapping[str, str] | None = None) -> None:
        self._check_same_pool(origin, target)
        now: dict[bytes, Any] = {}
        later: dict[str, str] = {}
        for key, value in (props or {}).items():
            if ":" in key:
                now[_b(key)] = _b(value)
            elif key in LZC_NATIVE_PROPS:
                index = LZC_NATIVE_PROPS[key]
                if index is None:
                    now[_b(key)] = _b(value)
                elif value in index:
                    now[_b(key)] = index[value]
                else:
                    raise InvalidProperty(f"'{key}' must be one of {' | '.join(index)}: {value!r}", target)
            else:
                later[key] = value
        if self._refuse("lzc_clone", origin, target):
            return
        # Clone and properties in one ioctl: the kernel destroys the clone
        # again if a property is refused. Not mounted (unlike `zfs clone`).
        self._call("lzc_clone", _b(target), _b(origin), now, name=target)
        if later:
            try:
                super().set_props(target, later)
            except ZfsError:
                self._call("lzc_destroy", _b(target), name=target)
                raise

    def promote(self, name: str) -> None:
        if self._refuse("lzc_promote", name):
            return
        self._call("lzc_promote", _b(name), name=name)

    def rename(self, old: str, new: str) -> None:
        self._check_rename(old, new)
        if self._mounted_in_tree(old):
            # lzc_rename leaves mounts under their old name; `zfs rename`
            # unmounts and remounts them.
            return super().rename(old, new)
        if self._refuse("lzc_rename", old, new):
            return
        try:
            self._call("lzc_rename", _b(old), _b(new), name=old)
        except DatasetBusy as exc:
            raise self._busy(exc, old) from None

    def destroy(self, name: str) -> None:
        if "@" in name:
            if not self.exists(name):  # lzc_destroy_snaps ignores missing ones
                raise DatasetNotFound(f"cannot destroy '{name}': dataset does not exist", name)
            if self._refuse("lzc_destroy_snaps", name):
                return
            self._call("lzc_destroy_snaps", [_b(name)], False, name=name)
            return
        if self.mountpoints_of(name):
            raise DatasetBusy(f"cannot destroy '{name}': filesystem is mounted", name)
        if self._refuse("lzc_destroy", name):
            return
        try:
            self._call("lzc_destroy", _b(name), name=name)
        except DatasetExists as exc:  # EEXIST: it has children
            raise HasDependents(f"cannot destroy '{name}': filesystem has children", name, exc.errno) from None
        except DatasetBusy as exc:
            # EBUSY: it has snapshots, or it is not mounted HERE (checked
            # above) but still mounted in another mount namespace.
            if self._zfs("list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", name, name=name).strip():
                raise HasDependents(f"cannot destroy '{name}': filesystem has snapshots", name, exc.errno) from None
            raise self._busy(DatasetBusy(f"cannot destroy '{name}': dataset is busy", name, exc.errno), name) from None

    def hold(self, snapshot: str, tag: str) -> None:
        if self._refuse("lzc_hold", snapshot, tag):
            return
        missing = self._call("lzc_hold", {_b(snapshot): _b(tag)}, name=snapshot)
        if missing:
            raise DatasetNotFound(f"cannot hold '{snapshot}': dataset does not exist", snapshot)

    def release(self, snapshot: str, tag: str) -> None:
        if self._refuse("lzc_release", snapshot, tag):
            return
        missing = self._call("lzc_release", {_b(snapshot): [_b(tag)]}, name=snapshot)
        if missing:
            what = "dataset does not exist" if _b(snapshot) in missing else f"no such tag '{tag}'"
            raise DatasetNotFound(f"cannot release hold from '{snapshot}': {what}", snapshot)
