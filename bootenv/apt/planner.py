"""Plan an apt request with python-apt, changing nothing.

python-apt (Debian's python3-apt) is imported here only, and only when a
plan is made: the CLI starts without it. Its configuration
(`apt_pkg.config`) is process-global, so every setting made here is made
inside `apt_config()`, which puts back exactly what it changed.

The plan is built the way apt-get builds it: mark the request in the
depcache (install with its dependencies, remove, or the upgrade
algorithm), let the problem resolver fix what it can, then read the
changes, sizes and holds. A package on hold, a name apt does not know, a
request the resolver cannot satisfy and an apt lock held by another
process each raise a clear error; nothing is ever committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from typing import Iterator, Mapping, Optional

from .model import (
    UPGRADES,
    AptError,
    AptLocked,
    AptPlan,
    AptRequest,
    BrokenPackages,
    Change,
    HeldPackages,
    UnknownPackage,
    reboot_reasons,
)

# Build the cache in memory: planning never writes pkgcache.bin.
MEMORY_ONLY = {"Dir::Cache::pkgcache": "", "Dir::Cache::srcpkgcache": ""}


@contextlib.contextmanager
def apt_config(settings: Mapping[str, str]) -> Iterator[None]:
    """Set apt_pkg.config keys for the duration, then restore each one to
    its old value (or remove it if it was unset), and re-run init_system
    both times so apt sees the change (dpkg status path, architectures)."""
    import apt_pkg

    read_config_once(apt_pkg)
    config = apt_pkg.config
    saved: list[tuple[str, bool, str]] = []
    try:
        for key, value in settings.items():
            saved.append((key, config.exists(key), config.find(key)))
            config.set(key, value)
        apt_pkg.init_system()
        yield
    finally:
        for key, existed, old in reversed(saved):
            if existed:
                config.set(key, old)
            else:
                config.clear(key)
        apt_pkg.init_system()


def read_config_once(apt_pkg) -> None:
    """Read apt's configuration (/etc/apt/apt.conf*, $APT_CONFIG) if this
    process has not. `import apt` reads it only when no APT:: key is set,
    and apt_pkg.TagFile sets one (bootenv reads dpkg status files with it
    before it plans: a checkpoint's package manifest): without this, a plan
    made after one saw no lists and no sources (measured: "unable to
    locate package" after `bootenv create` in the same process).
    init_config sets Dir to "/", so an empty Dir means never read."""
    if not apt_pkg.config.find("Dir"):
        apt_pkg.init_config()


def root_settings(root: str = "/", extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The apt_pkg settings that make apt look at the system under `root`
    (its sources, lists and dpkg status) with an in-memory cache."""
    settings = dict(MEMORY_ONLY)
    if os.path.abspath(root) != "/":
        root = os.path.abspath(root)
        settings["Dir"] = root + "/"
        settings["Dir::State::status"] = os.path.join(root, "var/lib/dpkg/status")
    settings.update(extra or {})
    return settings


# ------------------------------------------------------------------ locks

_FLOCK = "hhqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid


def lock_holder(path: str) -> Optional[int]:
    """Return the pid holding a POSIX write lock on `path` (as apt and dpkg
    take them), or None if nobody does or the file does not exist.
    Asks the kernel (F_GETLK) without taking the lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, answer)
        return pid if l_type != fcntl.F_UNLCK else None
    finally:
        os.close(fd)


def apt_lock_paths() -> list[str]:
    """The lock files apt and dpkg take, as apt_pkg.config places them."""
    import apt_pkg

    admindir = os.path.dirname(apt_pkg.config.find_file("Dir::State::status"))
    return [
        os.path.join(admindir, "lock-frontend"),
        os.path.join(admindir, "lock"),
        os.path.join(apt_pkg.config.find_dir("Dir::State::Lists"), "lock"),
        os.path.join(apt_pkg.config.find_dir("Dir::Cache::Archives"), "lock"),
    ]


def check_apt_locks(paths: list[str]) -> None:
    """Raise AptLocked naming the process if any of `paths` is locked."""
    for path in paths:
        pid = lock_holder(path)
        if pid:
            raise AptLocked(
                f"the package system is in use: {path} is held by process {pid} ({_process_name(pid)}); "
                "wait for it to finish and try again"
            )


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


# ------------------------------------------------------------------ planning


def plan(request: AptRequest, *, root: str = "/", config: Optional[Mapping[str, str]] = None) -> AptPlan:
    """Given a request and the system under `root` (its dpkg status, sources
    and downloaded lists), return what apt would do. `config` adds apt_pkg
    settings (tests point Dir:: keys at a fake apt root). Raise AptLocked,
    UnknownPackage, HeldPackages, BrokenPackages, AptError."""
    try:
        import apt
        import apt_pkg
    except ImportError as exc:
        raise AptError(
            f"python3-apt is not available to this Python ({exc}); install python3-apt "
            "and run bootenv with Debian's /usr/bin/python3"
        ) from exc

    with apt_config(root_settings(root, config)):
        check_apt_locks(apt_lock_paths())
        try:
            cache = apt.Cache()
        except (SystemError, apt_pkg.Error) as exc:
            raise AptError(f"cannot read the package state: {_apt_message(exc)}") from exc
        try:
            notes = _mark(cache, request, apt_pkg)
            return _read_plan(cache, request, notes, root, apt_pkg)
        finally:
            cache.close()


def _apt_message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.replace("E:", "").strip() or type(exc).__name__


def _resolve(cache, name: str):
    """The package `name` stands for: the package itself, or the one
    provider of a virtual package. Raise UnknownPackage."""
    if name in cache:
        return cache[name]
    if cache.is_virtual_package(name):
        providers = sorted({p.name for p in cache.get_providing_packages(name)})
        if len(providers) == 1:
            return cache[providers[0]]
        raise UnknownPackage(
            f"{name} is a virtual package provided by {', '.join(providers)}: name the one to install"
        )
    raise UnknownPackage(f"unable to locate package {name} (is it spelled right, and did 'apt update' run?)")


def _is_held(pkg, apt_pkg) -> bool:
    return pkg._pkg.selected_state == apt_pkg.SELSTATE_HOLD


def _mark(cache, request: AptRequest, apt_pkg) -> list[str]:
    """Mark the request in the depcache as apt-get would. Return notes."""
    notes: list[str] = []
    if request.action in UPGRADES:
        try:
            cache.upgrade(dist_upgrade=request.action != "upgrade")
        except SystemError as exc:
            raise BrokenPackages(f"apt cannot compute the upgrade: {_apt_message(exc)}") from exc
        return notes
    wanted = [(name, _resolve(cache, name)) for name in request.packages]
    for name, pkg in wanted:
        if _is_held(pkg, apt_pkg):
            raise HeldPackages(f"{pkg.name} is held: run 'apt-mark unhold {pkg.name}' first, or leave it out")
    try:
        with cache.actiongroup():
            for name, pkg in wanted:
                if request.action == "install":
                    if pkg.candidate is None:
                        raise UnknownPackage(f"package {name} has no installation candidate")
                    if pkg.is_installed and not pkg.is_upgradable:
                        notes.append(f"{pkg.name} is already the newest version ({pkg.installed.version}).")
                        continue
                    pkg.mark_install()
                else:
                    if not pkg.is_installed:
                        notes.append(f"Package '{pkg.name}' is not installed, so not removed.")
                        continue
                    pkg.mark_delete(purge=request.action == "purge")
    except SystemError as exc:
        raise BrokenPackages(
            f"apt cannot satisfy {request.text}: {_apt_message(exc)}{_broken_list(cache)}"
        ) from exc
    # The resolver "fixes" an unsatisfiable request by dropping it; apt-get
    # calls that an error, and so do we.
    for name, pkg in wanted:
        if request.action == "install" and pkg.is_installed and not pkg.is_upgradable:
            continue
        if request.action != "install" and not pkg.is_installed:
            continue
        done = pkg.marked_delete if request.action != "install" else (pkg.marked_install or pkg.marked_upgrade)
        if not done:
            raise BrokenPackages(f"apt cannot satisfy {request.text}: {pkg.name} {_unmet(pkg)}")
    return notes


def _unmet(pkg) -> str:
    """Why `pkg` cannot be installed: its dependencies nothing satisfies."""
    if pkg.candidate is None:
        return "has no installation candidate"
    missing = [
        " | ".join(f"{d.name}{f' ({d.relation} {d.version})' if d.version else ''}" for d in group)
        for group in pkg.candidate.dependencies
        if not any(d.target_versions for d in group)
    ]
    if missing:
        return "depends on " + ", ".join(missing) + ", which cannot be installed"
    return "has unmet dependencies (held or conflicting packages)"


def _broken_list(cache) -> str:
    broken = sorted(p.name for p in cache if p.is_inst_broken)
    return f" (broken: {', '.join(broken)})" if broken else ""


def _read_plan(cache, request: AptRequest, notes: list[str], root: str, apt_pkg) -> AptPlan:
    if cache.broken_count:
        raise BrokenPackages(f"apt cannot satisfy {request.text}: unmet dependencies{_broken_list(cache)}")
    changes: list[Change] = []
    write = 0
    held: list[str] = []
    for pkg in sorted(cache.get_changes(), key=lambda p: p.name):
        old = pkg.installed.version if pkg.installed else None
        new = pkg.candidate.version if pkg.candidate else None
        if pkg.marked_delete:
            action = "purge" if request.action == "purge" else "remove"
            new = None
        elif pkg.marked_install:
            action = "install"
        elif pkg.marked_upgrade:
            action = "upgrade"
        elif pkg.marked_downgrade:
            action = "downgrade"
        elif pkg.marked_reinstall:
            action = "reinstall"
        else:
            continue
        if action not in ("remove", "purge") and pkg.candidate is not None:
            write += pkg.candidate.installed_size
        if _is_held(pkg, apt_pkg):
            held.append(pkg.name)
        changes.append(Change(pkg.name, action, old, new))
    if held:
        raise HeldPackages(
            f"{request.text} would change held packages: {', '.join(held)} "
            "(run 'apt-mark unhold' on them first, or leave them out)"
        )
    kept = sorted(p.name for p in cache if p.is_upgradable and not p.marked_upgrade and not p.marked_delete)
    if request.action not in UPGRADES:
        kept = []
    return AptPlan(
        request=request,
        changes=tuple(changes),
        download_bytes=int(cache.required_download),
        space_bytes=int(cache.required_space),
        write_bytes=int(write),
        kept_back=tuple(kept),
        reboot_reasons=reboot_reasons(changes, root),
        notes=tuple(notes),
    )
