"""`bootenv doctor`: name the layout this machine has and say, for each
part of it, whether bootenv's checkpoints, activation and rollback work on
it, and what to change where they do not. Read-only: one listing of the BE
root, one property read of the running BE, the mount table, and a look at
files in /boot and /etc.

What it checks, and why each matters:

- /boot: inside the BE (the checkpoint has its kernels: rollback boots the
  kernel the BE was made with), a filesystem every BE shares (a partition,
  or a dataset on a boot pool such as bpool/BOOT/debian: the checkpoint has
  no kernel, so a rollback boots whatever /boot holds then, which must have
  modules in the BE), or missing.
- the rollback target (what `bootenv rollback` would activate): the kernel
  that would boot it has its modules in it. This is the one failure that
  makes doctor exit non-zero: a rollback that would not boot.
- GRUB's home (GRUBDIR): on a filesystem every BE shares (else activate is
  refused: GRUB reads the copy in the BE it was installed from) and whether
  GRUB can write its environment there (a true one-shot), and 42_bootenv.
- systemd-boot: the ESP and its loader.conf.
- encryption: a checkpoint is a clone under the same encryption root (no
  new key, the same passphrase prompt).
- datasets: which are part of the running BE (cloned with it) and which
  are shared (left alone), and the Ubuntu installer's zsys properties.
- the next boot: the BE it names exists and is complete.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

from .boot.kernels import kernel_versions, parse_boot_record, version_key
from .engine import Engine
from .errors import BootenvError
from .model import STATE_COMPLETE, BootEnv, human_size
from .zfs.base import ZfsError

OK, NOTE, WARN, FAIL = "ok", "note", "warn", "fail"
GRUB_WRITABLE = frozenset({"ext2", "ext3", "ext4", "vfat", "fat", "msdos"})
ENCRYPTION_PROPS = ("encryption", "encryptionroot", "keystatus")
ZSYS_BOOTFS_DATASETS = "com.ubuntu.zsys:bootfs-datasets"
# On a root Ubuntu's installer (zsys) made: `yes` (its user data carry
# bootfs-datasets naming the root).
ZSYS_BOOTFS = "com.ubuntu.zsys:bootfs"
# Mount points that are never "shared data" of a root on ZFS.
PSEUDO = ("/proc", "/sys", "/dev", "/run", "/tmp")


@dataclass(frozen=True)
class Finding:
    """One thing doctor looked at: its area, a verdict (ok, note, warn,
    fail) and, when it is not ok, what to change."""

    area: str
    verdict: str
    text: str
    fix: Optional[str] = None


@dataclass
class Diagnosis:
    layout: str
    facts: dict
    findings: list[Finding] = field(default_factory=list)

    @property
    def rollback_boots(self) -> bool:
        return not any(f.verdict == FAIL for f in self.findings)

    def as_dict(self) -> dict:
        return {
            "layout": self.layout,
            "facts": self.facts,
            "findings": [asdict(f) for f in self.findings],
            "rollback_boots": self.rollback_boots,
        }

    def describe(self) -> str:
        width = max(len(k) for k in self.facts) if self.facts else 0
        lines = [f"Layout: {self.layout}", ""]
        for key, value in self.facts.items():
            shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else str(value))
            lines.append(f"  {key.ljust(width)}  {shown or '-'}")
        lines.append("")
        for f in self.findings:
            lines.append(f"[{f.verdict}] {f.area}: {f.text}")
            if f.fix:
                lines.append(f"       fix: {f.fix}")
        lines.append("")
        lines.append(
            "A rollback would boot." if self.rollback_boots else "A rollback would NOT boot: see the [fail] lines above."
        )
        return "\n".join(lines)


def mount_of(mounts: Iterable[tuple[str, str, str]], path: str) -> Optional[tuple[str, str]]:
    """(fstype, source) of what is mounted exactly at `path` (the last
    mount there covers earlier ones), or None."""
    found = None
    for mountpoint, fstype, source in mounts:
        if mountpoint == path:
            found = (fstype, source)
    return found


def fs_holding(mounts: Iterable[tuple[str, str, str]], path: str) -> Optional[tuple[str, str, str]]:
    """(mountpoint, fstype, source) of the filesystem that holds `path`:
    the longest mount point that is `path` or one of its parents."""
    best: Optional[tuple[str, str, str]] = None
    for mountpoint, fstype, source in mounts:
        inside = path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")
        if inside and (best is None or len(mountpoint) >= len(best[0])):
            best = (mountpoint, fstype, source)
    return best


def _in_tree(dataset: str, top: str) -> bool:
    return dataset == top or dataset.startswith(top + "/")


class Doctor:
    """Given the engine (its backend, BE root and running BE), the mount
    table as (mountpoint, fstype, source) rows, the bootloader's name and
    the running system's root directory, diagnose."""

    def __init__(self, engine: Engine, mounts: list[tuple[str, str, str]], *, bootloader: str, root: str = "/"):
        self.engine = engine
        self.mounts = mounts
        self.bootloader = bootloader
        self.root = root
        self.findings: list[Finding] = []
        self.paired = False  # /boot is the running BE's boot half (diagnose finds out)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *[p.lstrip("/") for p in parts])

    def add(self, area: str, verdict: str, text: str, fix: Optional[str] = None) -> None:
        self.findings.append(Finding(area, verdict, text, fix))

    # ------------------------------------------------------------ the whole

    def diagnose(self) -> Diagnosis:
        engine = self.engine
        scan = engine.scan()
        bes = engine.list(scan)
        running = next((be for be in bes if be.running), None)
        props = self._running_props(running)
        boot = mount_of(self.mounts, "/boot")
        boot_pool = boot[1].split("/", 1)[0] if boot and boot[0] == "zfs" and running and not _in_tree(boot[1], running.dataset) else None
        self.paired = bool(boot_pool and engine.boot_root and boot[1].startswith(engine.boot_root + "/"))
        facts = {
            "BE root": engine.be_root,
            "boot root": engine.boot_root,
            "running BE": running.dataset if running else None,
            "pool bootfs": scan.bootfs,
            "next boot": scan.next_boot,
            "bootloader": self.bootloader,
            "/boot": self._describe_mount("/boot", running),
            "GRUB directory": self._describe_holder("/boot/grub", running) if self.bootloader == "grub" else None,
            "ESP": self._esp(),
            "encryption": self._encryption_text(props),
            "BE datasets": list(scan.members(running.dataset)) if running else [],
            "shared datasets": self._shared(running),
        }
        zsys = props.get(ZSYS_BOOTFS_DATASETS) or (f"{ZSYS_BOOTFS}={props[ZSYS_BOOTFS]}" if props.get(ZSYS_BOOTFS) == "yes" else None)
        if zsys:
            facts["zsys"] = zsys
        layout = self._layout_name(boot, boot_pool, zsys, props, self.paired)

        self.check_next_boot(scan.next_boot, bes)
        self.check_boot(boot, running, boot_pool)
        self.check_rollback(running, boot, bes)
        if self.bootloader == "grub":
            self.check_grub(running)
        elif self.bootloader == "systemd-boot":
            self.check_systemd_boot()
        elif self.bootloader == "bootfs":
            self.add("bootloader", NOTE, "no bootloader driver: bootenv sets only the pool's bootfs (what ZFSBootMenu boots)",
                     "set bootloader = grub|systemd-boot|zfsbootmenu in /etc/bootenv/bootenv.conf if detection missed yours")
        self.check_encryption(props)
        if zsys:
            self.add("layout", NOTE, "Ubuntu's installer (zsys) layout: USERDATA and everything outside the BE root is never touched; "
                     "zsys's properties are left as they are")
        return Diagnosis(layout, facts, self.findings)

    # ------------------------------------------------------------ facts

    def _running_props(self, running: Optional[BootEnv]) -> dict[str, str]:
        if running is None:
            return {}
        out: dict[str, str] = {}
        for props in (ENCRYPTION_PROPS, (ZSYS_BOOTFS, ZSYS_BOOTFS_DATASETS)):
            try:  # a backend (the fake) may not know a property: unknown, not an error
                out.update(self.engine.zfs.get_props(running.dataset, list(props)))
            except ZfsError:
                pass
        return out

    def _describe_mount(self, path: str, running: Optional[BootEnv]) -> str:
        m = mount_of(self.mounts, path)
        if m is None:
            return "inside the BE (no separate mount)"
        fstype, source = m
        if fstype == "zfs" and running and _in_tree(source, running.dataset):
            return f"{source} (zfs, part of the BE)"
        if fstype == "zfs" and self.engine.boot_root and source.startswith(self.engine.boot_root + "/"):
            return f"{source} (zfs, the BE's own boot half: each BE has its {self.engine.boot_root}/NAME)"
        return f"{source} ({fstype}, shared by every BE)"

    def _describe_holder(self, path: str, running: Optional[BootEnv]) -> str:
        held = fs_holding(self.mounts, path)
        if held is None:
            return "unknown"
        mountpoint, fstype, source = held
        where = "inside the running BE" if fstype == "zfs" and running and _in_tree(source, running.dataset) else "shared"
        return f"{path} on {source} ({fstype}, mounted at {mountpoint}: {where})"

    def _esp(self) -> Optional[str]:
        for path in ("/boot/efi", "/efi"):
            m = mount_of(self.mounts, path)
            if m:
                return f"{m[1]} at {path} ({m[0]})"
        return None

    @staticmethod
    def _encryption_text(props: dict[str, str]) -> str:
        enc = props.get("encryption")
        if not enc:
            return "unknown"
        if enc == "off":
            return "off"
        return f"{enc}, encryption root {props.get('encryptionroot', '?')}, key {props.get('keystatus', '?')}"

    def _shared(self, running: Optional[BootEnv]) -> list[str]:
        """ZFS datasets mounted on this system that are not part of the
        running BE: every BE sees the same ones (/home, /var/log on
        rpool/..., a boot pool's /boot)."""
        out = []
        for mountpoint, fstype, source in self.mounts:
            if fstype != "zfs" or mountpoint.startswith(PSEUDO) or mountpoint.startswith("/run/bootenv"):
                continue
            if running and _in_tree(source, running.dataset):
                continue
            if source.startswith(self.engine.be_root + "/"):
                continue  # another BE mounted by `bootenv mount`: not shared data
            if self.engine.boot_root and source.startswith(self.engine.boot_root + "/"):
                continue  # a BE's boot half (the running one's /boot, or one `bootenv mount` made)
            entry = f"{source} ({mountpoint})"
            if entry not in out:
                out.append(entry)
        return out

    @staticmethod
    def _layout_name(boot, boot_pool, zsys, props, paired=False) -> str:
        parts = []
        if zsys:
            parts.append("Ubuntu installer (zsys)")
        if boot_pool and paired:
            parts.append(f"boot pool {boot_pool} for /boot, one boot half per BE")
        elif boot_pool:
            parts.append(f"boot pool {boot_pool} for /boot")
        elif boot is None:
            parts.append("single pool, /boot inside the BE")
        elif boot[0] == "zfs":
            parts.append("/boot a dataset of the BE")
        else:
            parts.append(f"/boot a separate {boot[0]} partition")
        enc = props.get("encryption")
        if enc and enc != "off":
            parts.append("encrypted root")
        return ", ".join(parts)

    # ------------------------------------------------------------ checks

    def check_next_boot(self, next_boot: Optional[str], bes: list[BootEnv]) -> None:
        if not next_boot:
            self.add("next boot", WARN, "the pool has no bootfs and the bootloader names no BE",
                     "bootenv activate NAME")
            return
        be = next((b for b in bes if b.dataset == next_boot), None)
        if be is None:
            self.add("next boot", FAIL, f"the next boot names {next_boot}, which is not a boot environment here",
                     "bootenv activate NAME (a BE that exists)")
        elif be.state not in (None, STATE_COMPLETE):
            self.add("next boot", FAIL, f"the next boot is {be.name}, which is {be.state}, not whole",
                     "bootenv activate NAME (a complete BE)")
        else:
            self.add("next boot", OK, f"{be.name} exists and is complete")

    def check_boot(self, boot: Optional[tuple[str, str]], running: Optional[BootEnv], boot_pool: Optional[str]) -> None:
        if running is None:
            self.add("/boot", NOTE, "the running system is not a BE under the BE root: /boot not checked")
            return
        if boot is None or (boot[0] == "zfs" and _in_tree(boot[1], running.dataset)):
            kernels = kernel_versions(self.path("/boot"))
            if kernels:
                self.add("/boot", OK, f"inside the BE: every checkpoint keeps its own kernels ({', '.join(kernels)})")
            else:
                self.add("/boot", WARN, "inside the BE, but it holds no vmlinuz-*: activate will refuse",
                         "install a kernel package (apt install linux-image-amd64)")
            return
        fstype, source = boot
        if self.paired:
            space = self.engine.boot_pool_space()
            room = f"; {human_size(space[1])} available of {human_size(space[2])}" if space else ""
            self.add("/boot", OK,
                     f"{source} on boot pool {boot_pool}, paired with the BE: every checkpoint clones it, so each BE keeps "
                     f"its own kernels{room} (a checkpoint that would fill it is refused)")
        elif boot_pool:
            self.add("/boot", WARN,
                     f"on {source}, a dataset of pool {boot_pool} every BE shares: checkpoints do not include the "
                     "kernels, so after apt removes a kernel an older BE has no kernel with its modules",
                     f"keep the kernels your checkpoints need installed (apt-mark hold linux-image-...), or move /boot into "
                     f"the BE (a /boot directory in {running.dataset}; GRUB then needs its home on a shared filesystem)")
        else:
            self.add("/boot", WARN,
                     f"a separate {fstype} filesystem ({source}) shared by every BE: a rollback boots the kernel /boot "
                     "holds at that time, which needs its modules in the older BE",
                     "keep the kernels your checkpoints need installed (apt-mark hold), or keep /boot inside the BE")

    def check_rollback(self, running: Optional[BootEnv], boot: Optional[tuple[str, str]], bes: list[BootEnv]) -> None:
        """Would `bootenv rollback` boot: the kernel that would boot the
        target has its modules in it (from the target's org.bootenv:kernels
        record; no mount)."""
        if running is None:
            return
        try:
            _running, target, why = self.engine.rollback_target()
        except BootenvError as exc:
            self.add("rollback", NOTE, f"no rollback target: {exc}")
            return
        record = parse_boot_record(target.kernels)
        if record is None:
            self.add("rollback", NOTE, f"rollback would activate {target.name} ({why}); its kernels are not recorded, "
                     "activate checks them when it mounts it")
            return
        modules = set(record["modules"])
        shared = boot is not None and not (boot[0] == "zfs" and _in_tree(boot[1], running.dataset)) and not self.paired
        if shared:
            available = kernel_versions(self.path("/boot"))
            where = "the shared /boot"
        else:
            available = sorted((v for v, _initrd in record["boot"]), key=version_key)
            where = f"{target.name}'s /boot"
        matching = [v for v in available if v in modules]
        if not available:
            self.add("rollback", FAIL, f"rollback would activate {target.name}, but {where} holds no kernel",
                     f"install a kernel into {where}")
        elif shared and not matching:
            self.add("rollback", FAIL,
                     f"rollback would activate {target.name}: {where} holds {', '.join(available)}, but {target.name} "
                     f"has modules only for {', '.join(sorted(modules, key=version_key)) or 'none'}",
                     f"reinstall a kernel {target.name} has modules for (apt install linux-image-VERSION) before rolling back")
        elif not shared and available[-1] not in modules:
            self.add("rollback", FAIL,
                     f"rollback would activate {target.name}: its newest kernel {available[-1]} has no modules in it",
                     f"bootenv mount {target.name}; reinstall the kernel package inside it")
        else:
            kernel = matching[-1] if shared else available[-1]
            self.add("rollback", OK, f"rollback would activate {target.name} ({why}) and boot kernel {kernel} with its modules")

    def check_grub(self, running: Optional[BootEnv]) -> None:
        held = fs_holding(self.mounts, "/boot/grub")
        if held is not None and running is not None:
            _mountpoint, fstype, source = held
            if fstype == "zfs" and any(source.startswith(r + "/") for r in (self.engine.be_root, self.engine.boot_root) if r):
                self.add("GRUB", FAIL,
                         f"/boot/grub is inside boot environment {source}: GRUB keeps reading the menu and environment "
                         "of the BE it was installed from, so activate is refused",
                         "put /boot/grub on a filesystem every BE shares (an ext4 /boot/grub partition, the ESP, or a "
                         "dataset outside the BE root such as bpool/grub), then grub-install and update-grub: "
                         "`bootenv doctor --fix` does it")
            elif fstype in GRUB_WRITABLE:
                self.add("GRUB", OK, f"/boot/grub on {fstype} ({source}), shared: GRUB clears a one-shot itself")
            else:
                self.add("GRUB", OK, f"/boot/grub on {fstype} ({source}), shared; GRUB cannot write there, so "
                         "bootenv-boot.service ends a one-shot early in the trial boot")
        script = self.path("/etc/grub.d/42_bootenv")
        if not os.access(script, os.X_OK):
            self.add("GRUB", WARN, "/etc/grub.d/42_bootenv is missing or not executable: the boot menu has no BE entries",
                     "reinstall bootenv (apt install --reinstall bootenv), then update-grub")
        if not os.path.exists(self.path("/boot/grub/grub.cfg")):
            self.add("GRUB", WARN, "/boot/grub/grub.cfg is missing", "update-grub")

    def check_systemd_boot(self) -> None:
        esp = next((p for p in ("/boot/efi", "/efi") if mount_of(self.mounts, p)), None)
        if esp is None:
            self.add("systemd-boot", FAIL, "no ESP mounted at /boot/efi or /efi", "mount the ESP (see /etc/fstab)")
        elif not os.path.exists(self.path(esp, "loader/loader.conf")):
            self.add("systemd-boot", WARN, f"{esp}/loader/loader.conf is missing", "bootctl install")
        else:
            self.add("systemd-boot", OK, f"ESP at {esp} with loader/loader.conf")

    def check_encryption(self, props: dict[str, str]) -> None:
        enc = props.get("encryption")
        if enc and enc != "off":
            self.add("encryption", OK, f"the root is encrypted ({enc}, encryption root {props.get('encryptionroot', '?')}): "
                     "a checkpoint is a clone under the same encryption root: no new key, the same passphrase prompt")


def read_mounts(path: str = "/proc/self/mountinfo") -> list[tuple[str, str, str]]:
    from .zfs.mountinfo import parse_mountinfo

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []

