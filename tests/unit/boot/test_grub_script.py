"""contrib/grub.d/42_bootenv run with bash (and dash, what update-grub
uses) against fake `bootenv list -H`, `zfs`, `findmnt`, `mount` and a fake
grub-mkconfig_lib on PATH: one entry per BE, kernels from each BE or the
shared /boot, hostile titles quoted, the default/one-shot code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bootenv.boot.kernels import boot_record, parse_boot_record

SCRIPT = Path(__file__).resolve().parents[3] / "contrib" / "grub.d" / "42_bootenv"

FAKE_LIB = """
prepare_grub_to_access_device() { echo "insmod zfs"; echo "search --no-floppy --fs-uuid --set=root 0123abcd # $1"; }
make_system_path_relative_to_its_root() { echo "/"; }
"""

FIELDS = "active,running,name,title,dataset,referenced,boot,kernels"
FAKE_BOOTENV = f'#!/bin/sh\n[ "$*" = "list -H -o {FIELDS}" ] || exit 2\ncat "$FAKE/list"\n'
FAKE_ZFS = r'''#!/bin/sh
case "$*" in
  "set org.bootenv:kernels="*) printf '%s\n' "$*" >> "$FAKE/sets" ;;
  *) echo "fake zfs: $*" >&2; exit 1 ;;
esac
'''
FAKE_FINDMNT = r'''#!/bin/sh
# findmnt -n -o FSTYPE|SOURCE --mountpoint PATH
[ -f "$FAKE/bootmount" ] || exit 1
case "$3" in FSTYPE) cut -d' ' -f1 "$FAKE/bootmount" ;; SOURCE) cut -d' ' -f2 "$FAKE/bootmount" ;; esac
'''
FAKE_MOUNT = r'''#!/bin/sh
# mount -t zfs -o ro,zfsutil DATASET DIR
[ "$1 $2 $3 $4" = "-t zfs -o ro,zfsutil" ] || exit 2
echo "$5" >> "$FAKE/mounts"
case "$5" in
  */BOOT/*) cp -R "$FAKE/boots/${5##*/}/." "$6/" ;;
  *) cp -R "$FAKE/bes/${5##*/}/." "$6/" ;;
esac
'''
FAKE_UMOUNT = '#!/bin/sh\nfind "$1" -mindepth 1 -delete\n'


def tree(path: Path, kernels=(), modules=()):
    (path / "boot").mkdir(parents=True, exist_ok=True)
    for v in kernels:
        (path / "boot" / f"vmlinuz-{v}").write_text("k")
        (path / "boot" / f"initrd.img-{v}").write_text("i")
    for v in modules:
        (path / "lib" / "modules" / v).mkdir(parents=True, exist_ok=True)


class Setup:
    def __init__(self, tmp: Path):
        self.fake = tmp / "fake"
        self.bin = tmp / "bin"
        self.sysroot = tmp / "sysroot"
        for d in (self.fake / "titles", self.fake / "bes", self.bin, self.sysroot / "boot" / "grub"):
            d.mkdir(parents=True)
        (tmp / "grub-mkconfig_lib").write_text(FAKE_LIB)
        self.pkgdatadir = tmp
        for name, text in (("bootenv", FAKE_BOOTENV), ("zfs", FAKE_ZFS), ("findmnt", FAKE_FINDMNT),
                           ("mount", FAKE_MOUNT), ("umount", FAKE_UMOUNT)):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.rows: list[str] = []

    def be(self, name, *, running=False, active=False, title=None, kernels=(), modules=(), referenced=1000, record=None,
           paired=False):
        """A BE as `bootenv list -H -o FIELDS` prints it (the title with
        control characters as spaces); `record` its org.bootenv:kernels
        ("auto": what bootenv records for its tree, kernels.boot_record);
        `paired`: its kernels are in its own boot half bpool/BOOT/NAME."""
        shown = "".join(" " if not c.isprintable() or c == "\t" else c for c in title) if title else "-"
        path = self.sysroot if running else self.fake / "bes" / name
        tree(path, () if paired and not running else kernels, modules)
        if paired and not running:
            tree(self.fake / "boots" / name / "x", kernels)  # the boot half's files at its root
            for f in (self.fake / "boots" / name / "x" / "boot").iterdir():
                f.rename(self.fake / "boots" / name / f.name)
            shutil.rmtree(self.fake / "boots" / name / "x")
        if record == "auto":
            if paired and not running:
                shutil.copytree(self.fake / "boots" / name, path / "boot", dirs_exist_ok=True)
                record = boot_record(str(path), referenced)
                shutil.rmtree(path / "boot")
                (path / "boot").mkdir()
            else:
                record = boot_record(str(path), referenced)
        self.rows.append("\t".join([
            "A" if active else "-", "C" if running else "-", name, shown, f"rpool/ROOT/{name}", str(referenced),
            f"bpool/BOOT/{name}" if paired else "-", record or "-",
        ]))

    @property
    def mounts(self) -> list[str]:
        path = self.fake / "mounts"
        return path.read_text().split() if path.exists() else []

    @property
    def sets(self) -> list[str]:
        path = self.fake / "sets"
        return path.read_text().splitlines() if path.exists() else []

    def run(self, shell="bash", **env) -> str:
        (self.fake / "list").write_text("\n".join(self.rows) + "\n")
        full = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "FAKE": str(self.fake),
            "pkgdatadir": str(self.pkgdatadir),
            "BOOTENV_SYSROOT": str(self.sysroot),
            "BOOTENV_GRUB_FS": "zfs",
            "GRUB_DEVICE": "/dev/vda2",
            "GRUB_DEVICE_BOOT": "/dev/vda3",
            "GRUB_CMDLINE_LINUX": "",
            "GRUB_CMDLINE_LINUX_DEFAULT": "quiet",
            **env,
        }
        proc = subprocess.run([shutil.which(shell), str(SCRIPT)], env=full, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        self.stderr = proc.stderr
        return proc.stdout


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


def grub_words(line: str) -> list[str]:
    """Split a grub.cfg line the way GRUB's lexer does for the cases the
    script produces: '...' literal, "..." with $ expansion (refused here),
    backslash escapes outside quotes. Fails on an unquoted $ or newline."""
    words, cur, i, inword = [], [], 0, False
    while i < len(line):
        c = line[i]
        if c == "'":
            j = line.index("'", i + 1)
            cur.append(line[i + 1 : j])
            i, inword = j + 1, True
            continue
        if c == "\\":
            cur.append(line[i + 1])
            i, inword = i + 2, True
            continue
        if c in " \t":
            if inword:
                words.append("".join(cur))
                cur, inword = [], False
            i += 1
            continue
        assert c not in '$"\n;&|<>', f"unquoted {c!r} in {line!r}"
        cur.append(c)
        inword = True
        i += 1
    if inword:
        words.append("".join(cur))
    return words


def entries(cfg: str) -> list[list[str]]:
    return [grub_words(l.rstrip("{").rstrip()) for l in cfg.splitlines() if l.startswith("menuentry ")]


SHELLS = ["bash"] + (["dash"] if shutil.which("dash") else [])


@pytest.mark.parametrize("shell", SHELLS)
def test_one_entry_per_be_with_its_own_kernel(setup, shell):
    setup.be("debian", running=True, title="Debian 12", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    setup.be("upgraded", active=True, kernels=["6.1.0-28-amd64", "6.1.0-30-amd64"], modules=["6.1.0-30-amd64"])
    cfg = setup.run(shell)
    ids = [e[e.index("--id") + 1] for e in entries(cfg)]
    assert ids == ["bootenv-debian", "bootenv-upgraded"]
    assert [e[1] for e in entries(cfg)] == ["bootenv: Debian 12", "bootenv: upgraded"]
    assert "\tlinux /ROOT/debian@/boot/vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/debian ro  quiet" in cfg
    assert "\tlinux /ROOT/upgraded@/boot/vmlinuz-6.1.0-30-amd64 root=ZFS=rpool/ROOT/upgraded ro  quiet" in cfg
    assert "\tinitrd /ROOT/upgraded@/boot/initrd.img-6.1.0-30-amd64" in cfg
    assert "search --no-floppy --fs-uuid --set=root 0123abcd # /dev/vda2" in cfg
    assert (setup.fake / "mounts").read_text().split() == ["rpool/ROOT/upgraded"]  # the running one is not mounted
    assert not list((setup.fake.parent).glob("bootenv-grub.*"))


HOSTILE = [
    "it's \"quoted\"",
    "$(reboot) ${root} $prefix `id`",
    "line one\nline two\tand tab",
    "back\\slash; menuentry 'x' { }",
    "'''",
    "\x1b[31mred\x1b[0m",
]


@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_titles_are_text(setup, shell):
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    for n, title in enumerate(HOSTILE):
        setup.be(f"be{n}", title=title, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    cfg = setup.run(shell)
    got = [e[1] for e in entries(cfg)][1:]
    want = ["bootenv: " + "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in t) for t in HOSTILE]
    assert got == want
    # Every menuentry is one line and every body line is ours.
    body = [l for l in cfg.splitlines() if l.startswith("\t")]
    assert all(l.split()[0] in ("insmod", "search", "echo", "linux", "initrd", "load_env", "set", "save_env", "#") for l in body), body


def test_shared_boot_uses_newest_kernel_with_modules(setup):
    (setup.fake / "bootmount").write_text("ext4 /dev/vda3\n")
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64", "6.1.0-30-amd64"], modules=["6.1.0-30-amd64"])
    setup.be("old", modules=["6.1.0-28-amd64"])
    setup.be("ancient", modules=["5.10.0-1-amd64"])
    cfg = setup.run()
    assert "\tlinux /vmlinuz-6.1.0-30-amd64 root=ZFS=rpool/ROOT/debian ro  quiet" in cfg
    assert "\tlinux /vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/old ro  quiet" in cfg
    assert "search --no-floppy --fs-uuid --set=root 0123abcd # /dev/vda3" in cfg
    assert "# bootenv: ancient has no bootable kernel" in cfg and "no kernel with modules for ancient" in setup.stderr
    assert [e[e.index("--id") + 1] for e in entries(cfg)] == ["bootenv-debian", "bootenv-old"]


def test_boot_dataset_inside_the_be_is_not_shared(setup):
    (setup.fake / "bootmount").write_text("zfs rpool/ROOT/debian/boot\n")
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    assert "linux /ROOT/debian@/boot/vmlinuz-6.1.0-28-amd64" in setup.run()


def test_default_and_oneshot_code(setup):
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    on_zfs = setup.run()
    assert 'load_env -f "${bootenv_env}" bootenv_default bootenv_once' in on_zfs
    assert 'set default="bootenv-${bootenv_once}"' in on_zfs and 'set default="bootenv-${bootenv_default}"' in on_zfs
    assert "save_env" not in on_zfs.replace("GRUB cannot write here; bootenv-boot.service clears", "")
    on_ext4 = setup.run(BOOTENV_GRUB_FS="ext2")
    assert '\tsave_env -f "${bootenv_env}" bootenv_once' in on_ext4


def test_invalid_names_and_broken_lines_are_skipped(setup):
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    setup.rows.append("garbage line from a title")
    setup.rows.append("-\t-\tbad name\tx\trpool/ROOT/bad name\t1\t-")
    assert [e[e.index("--id") + 1] for e in entries(setup.run())] == ["bootenv-debian"]


def test_without_bootenv_emits_nothing(setup):
    os.unlink(setup.bin / "bootenv")
    assert setup.run(BOOTENV_COMMAND="bootenv-not-installed") == ""


def test_output_passes_grub_script_check(setup, tmp_path):
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    for n, title in enumerate(HOSTILE):
        setup.be(f"be{n}", title=title, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(setup.run())
    subprocess.run(["grub-script-check", str(cfg)], check=True)


# ------------------------------------------------------------ records


@pytest.mark.parametrize("shell", SHELLS)
def test_a_be_with_a_record_is_not_mounted(setup, shell):
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    setup.be("old", kernels=["6.1.0-28-amd64", "6.1.0-30-amd64"], modules=["6.1.0-30-amd64"], record="auto")
    cfg = setup.run(shell)
    assert setup.mounts == [] and setup.sets == []
    assert "\tlinux /ROOT/old@/boot/vmlinuz-6.1.0-30-amd64 root=ZFS=rpool/ROOT/old ro  quiet" in cfg
    assert "\tinitrd /ROOT/old@/boot/initrd.img-6.1.0-30-amd64" in cfg


@pytest.mark.parametrize("shell", SHELLS)
def test_a_missing_or_stale_record_is_looked_up_once_and_written(setup, shell):
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    setup.be("new", kernels=["6.1.0-30-amd64"], modules=["6.1.0-30-amd64"], referenced=5000)
    setup.be("stale", kernels=["6.1.0-31-amd64"], modules=["6.1.0-31-amd64"], referenced=7000,
             record="ref=6999 boot=6.1.0-9-amd64/ modules=6.1.0-9-amd64")
    cfg = setup.run(shell)
    assert setup.mounts == ["rpool/ROOT/new", "rpool/ROOT/stale"]
    assert "vmlinuz-6.1.0-31-amd64 root=ZFS=rpool/ROOT/stale" in cfg and "6.1.0-9-amd64" not in cfg
    written = {line.split()[-1]: line.split(" ", 1)[1].rsplit(" ", 1)[0] for line in setup.sets}
    assert set(written) == {"rpool/ROOT/new", "rpool/ROOT/stale"}
    # What the script records is what bootenv records (and parses back).
    want = boot_record(str(setup.fake / "bes" / "new"), 5000)
    assert written["rpool/ROOT/new"] == "org.bootenv:kernels=" + want
    assert parse_boot_record(want) == {"ref": 5000, "boot": [("6.1.0-30-amd64", "initrd.img-6.1.0-30-amd64")], "modules": ["6.1.0-30-amd64"]}


def test_shared_boot_uses_the_record_for_modules(setup):
    (setup.fake / "bootmount").write_text("ext4 /dev/vda3\n")
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64", "6.1.0-30-amd64"], modules=["6.1.0-30-amd64"])
    setup.be("old", modules=["6.1.0-28-amd64"], record="auto")
    setup.be("ancient", modules=["5.10.0-1-amd64"], record="auto")
    cfg = setup.run()
    assert setup.mounts == []
    assert "\tlinux /vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/old ro  quiet" in cfg
    assert "\tinitrd /initrd.img-6.1.0-28-amd64" in cfg
    assert "# bootenv: ancient has no bootable kernel" in cfg


def test_plain_titles_start_no_process_per_be(setup, tmp_path):
    """Per BE, the script runs builtins only when the BE has a record and
    a plain title (no tr/sed/cat/grub-probe per entry)."""
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    for n in range(20):
        setup.be(f"be{n}", title=f"checkpoint {n}", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"], record="auto")
    log = tmp_path / "execs"
    for tool in ("tr", "sed", "cat", "head", "sort"):
        real = shutil.which(tool)
        (setup.bin / tool).write_text(f'#!/bin/sh\necho {tool} >> "{log}"\nexec {real} "$@"\n')
        (setup.bin / tool).chmod(0o755)
    cfg = setup.run("dash" if "dash" in SHELLS else "bash")
    assert len(entries(cfg)) == 21
    assert len(log.read_text().splitlines()) < 10, log.read_text()  # the set-up, not one per BE


@pytest.mark.parametrize("shell", SHELLS)
def test_paired_boot_entries_load_each_bes_own_boot_half(setup, shell):
    """/boot is bpool/BOOT/debian (the OpenZFS guides), paired by bootenv:
    every entry loads the kernel of its BE's own boot half, reached on the
    boot pool's device as /BOOT/NAME@/; a BE without a record is looked
    into with its boot half mounted at its /boot."""
    (setup.fake / "bootmount").write_text("zfs bpool/BOOT/debian\n")
    setup.be("debian", running=True, kernels=["6.1.0-30-amd64"], modules=["6.1.0-30-amd64"], paired=True)
    setup.be("before", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"], paired=True)
    setup.be("known", kernels=["6.1.0-9-amd64"], modules=["6.1.0-9-amd64"], paired=True, record="auto")
    cfg = setup.run(shell)
    assert "\tlinux /BOOT/debian@/vmlinuz-6.1.0-30-amd64 root=ZFS=rpool/ROOT/debian ro  quiet" in cfg
    assert "\tlinux /BOOT/before@/vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/before ro  quiet" in cfg
    assert "\tinitrd /BOOT/before@/initrd.img-6.1.0-28-amd64" in cfg
    assert "\tlinux /BOOT/known@/vmlinuz-6.1.0-9-amd64 root=ZFS=rpool/ROOT/known ro  quiet" in cfg
    assert "search --no-floppy --fs-uuid --set=root 0123abcd # /dev/vda3" in cfg  # GRUB_DEVICE_BOOT: the boot pool
    assert setup.mounts == ["rpool/ROOT/before", "bpool/BOOT/before"]  # known has its record: no mount
    assert [s.split()[1].split("=")[0] for s in setup.sets] == ["org.bootenv:kernels"]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_root_in_grub_cmdline_linux_does_not_override_the_entries(setup, shell):
    """The OpenZFS guides put root=ZFS=rpool/ROOT/debian in GRUB_CMDLINE_LINUX
    (grub-probe cannot name an rpool without GRUB's feature set): after each entry's own
    root= it would win, and every entry would boot debian."""
    setup.be("debian", running=True, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    setup.be("ck", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    cfg = setup.run(shell, GRUB_CMDLINE_LINUX="root=ZFS=rpool/ROOT/debian console=ttyS0,115200 panic=5")
    assert "\tlinux /ROOT/ck@/boot/vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/ck ro console=ttyS0,115200 panic=5 quiet" in cfg
    assert cfg.count("root=ZFS=rpool/ROOT/debian") == 1  # debian's own entry only
