"""Name and property rules of OpenZFS, for the in-memory ZFS
(zfs_namecheck.c, zfs_prop.c, zpool_prop.c)."""

from __future__ import annotations

import errno as _errno
import re
import string

from ..base import InvalidName, InvalidProperty

MAX_NAME_LEN = 255  # ZFS_MAX_DATASET_NAME_LEN (256) includes the NUL
MAX_USER_PROP_NAME = 256
MAX_USER_PROP_VALUE = 8192
MAX_HOLD_TAG = 255

# zfs_namecheck.c valid_char(): OpenZFS also allows a space.
_VALID = frozenset(string.ascii_letters + string.digits + "_-.: ")
_USER_PROP_CHARS = frozenset(string.ascii_lowercase + string.digits + ":-._")


def _check_component(comp: str, name: str, what: str) -> None:
    if not comp:
        raise InvalidName(f"invalid {what} name {name!r}: empty component", name)
    if comp in (".", ".."):
        raise InvalidName(f"invalid {what} name {name!r}: '.' or '..' component", name)
    bad = set(comp) - _VALID
    if bad:
        raise InvalidName(
            f"invalid {what} name {name!r}: invalid character {sorted(bad)[0]!r}", name
        )


def check_name(name: object, kind: str = "any") -> None:
    """Raise InvalidName unless `name` is a valid ZFS name of `kind`
    ("filesystem", "snapshot" or "any")."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"invalid dataset name {name!r}", name if isinstance(name, str) else None)
    if len(name) > MAX_NAME_LEN:
        raise InvalidName(f"dataset name is too long: {name[:40]}...", name, _errno.ENAMETOOLONG)
    fs, at, snap = name.partition("@")
    what = "snapshot" if at else "filesystem"
    if kind == "snapshot" and not at:
        raise InvalidName(f"{name!r} is not a snapshot name", name)
    if kind == "filesystem" and at:
        raise InvalidName(f"{name!r} is a snapshot, not a filesystem", name)
    for comp in fs.split("/"):
        _check_component(comp, name, what)
    if not fs[0].isalpha():
        raise InvalidName(f"invalid pool name in {name!r}: must begin with a letter", name)
    if at:
        if "@" in snap or "/" in snap:
            raise InvalidName(f"invalid snapshot name {name!r}", name)
        _check_component(snap, name, what)


def is_user_prop(prop: str) -> bool:
    return ":" in prop


def check_user_prop(prop: str, value: str | None = None) -> None:
    if (
        not isinstance(prop, str)
        or ":" not in prop
        or len(prop) > MAX_USER_PROP_NAME
        or set(prop) - _USER_PROP_CHARS
    ):
        raise InvalidProperty(f"invalid user property name {prop!r}")
    if value is not None:
        if not isinstance(value, str):
            raise InvalidProperty(f"value of {prop} must be a string, not {type(value).__name__}")
        if len(value) > MAX_USER_PROP_VALUE:
            raise InvalidProperty(f"value of {prop} is too long", errno=_errno.E2BIG)


# Native filesystem properties that are inherited (plus mountpoint, which is
# inherited with the path appended) and their defaults.
INHERITED_DEFAULTS: dict[str, str] = {
    "readonly": "off",
    "atime": "on",
    "relatime": "on",
    "compression": "on",
    "exec": "on",
    "devices": "on",
    "setuid": "on",
}
_ONOFF = frozenset({"on", "off"})
_COMPRESSION = re.compile(r"^(on|off|lz4|lzjb|zle|gzip(-[1-9])?|zstd(-([1-9]|1[0-9]))?|zstd-fast(-\d+)?)$")

# Read-only native properties `get_props` knows.
READONLY_NATIVE = frozenset(
    {
        "type",
        "name",
        "guid",
        "createtxg",
        "creation",
        "origin",
        "used",
        "referenced",
        "usedbysnapshots",
        "usedbydataset",
        "usedbychildren",
        "mounted",
        "clones",
        "userrefs",
        "encryptionroot",
        "keystatus",
        "available",
    }
)
SETTABLE_NATIVE = frozenset({"mountpoint", "canmount"} | set(INHERITED_DEFAULTS))
# Native encryption: set when a filesystem is created, never after (a
# clone or a child lives under the encryption root it inherits).
CREATE_ONLY = {"encryption": frozenset({"on", "off", "aes-256-gcm", "aes-128-gcm", "aes-256-ccm"}),
               "keyformat": frozenset({"passphrase", "raw", "hex"})}
# The key properties: local on an encryption root only (promote moves them).
KEY_PROPS = (*CREATE_ONLY, "keylocation")
NATIVE = READONLY_NATIVE | SETTABLE_NATIVE | set(KEY_PROPS)


def check_native_value(prop: str, value: str) -> None:
    """Raise InvalidProperty unless `value` is valid for settable native `prop`."""
    if not isinstance(value, str):
        raise InvalidProperty(f"value of {prop} must be a string")
    ok: bool
    if prop == "mountpoint":
        ok = value in ("none", "legacy") or (value.startswith("/") and "\0" not in value)
    elif prop == "canmount":
        ok = value in ("on", "off", "noauto")
    elif prop == "compression":
        ok = bool(_COMPRESSION.match(value))
    else:
        ok = value in _ONOFF
    if not ok:
        raise InvalidProperty(f"bad value {value!r} for property {prop!r}")


def check_settable(prop: str, value: str, *, snapshot: bool) -> None:
    """Raise InvalidProperty unless `prop=value` may be set (on a snapshot
    only user properties may)."""
    if is_user_prop(prop):
        check_user_prop(prop, value)
        return
    if prop in READONLY_NATIVE or prop in KEY_PROPS:
        raise InvalidProperty(f"property {prop!r} is read-only")
    if prop not in SETTABLE_NATIVE:
        raise InvalidProperty(f"invalid property {prop!r}")
    if snapshot:
        raise InvalidProperty(f"property {prop!r} cannot be set on a snapshot")
    check_native_value(prop, value)


def check_creatable(props: dict[str, str]) -> None:
    """Raise InvalidProperty unless `props` may be given to `zfs create`:
    what check_settable allows, plus the encryption properties (a key
    format and location with encryption on, and only then)."""
    for k, v in props.items():
        if k in CREATE_ONLY:
            if v not in CREATE_ONLY[k]:
                raise InvalidProperty(f"bad value {v!r} for property {k!r}")
        elif k == "keylocation":
            if v != "prompt" and not v.startswith("file:///"):
                raise InvalidProperty(f"bad value {v!r} for property 'keylocation'")
        else:
            check_settable(k, v, snapshot=False)
    encrypted = props.get("encryption", "off") != "off"
    if encrypted != ("keyformat" in props):
        raise InvalidProperty("encryption needs a keyformat, and a keyformat needs encryption")


def check_gettable(prop: str) -> None:
    if is_user_prop(prop):
        check_user_prop(prop)
    elif prop not in NATIVE:
        raise InvalidProperty(f"invalid property {prop!r}")


POOL_PROPS = frozenset({"name", "bootfs", "health", "size", "allocated", "free", "comment"})
POOL_SETTABLE = frozenset({"bootfs", "comment"})
