"""A read-only command, as a whole process: `bootenv list` (-H, --json) and
`status` start exactly one `zfs` and at most one `zpool` and nothing else
(no process per BE, no bootloader probe, no `zfs list` for the BE root's
existence), and import neither libzfs_core nor python-apt nor tabulate;
`--version`, `list` and `status` import no typer at all.

The `bootenv` command runs in a fresh interpreter against the recording
fake zfs/zpool on PATH (tests/unit/zfs/fake_commands.py), with a stand-in
libzfs_core on PYTHONPATH that leaves a mark when it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bootenv.model import USER_PROPS
from bootenv.trial import STATUS_PROPS
from bootenv.zfs.base import LIST_PROPERTIES

from ..zfs.fake_commands import cmds  # noqa: F401 (fixture)

BES = 5

# Runs bootenv's console-script entry point with every process start
# recorded, then says which heavy modules it imported.
DRIVER = """\
import json, os, subprocess, sys
started = []
_init = subprocess.Popen.__init__
def _record(self, args, *a, **k):
    started.append([os.path.basename(str(args[0]))] + [str(x) for x in args[1:]])
    _init(self, args, *a, **k)
subprocess.Popen.__init__ = _record
sys.argv = ["bootenv"] + json.loads(os.environ["DRIVER_ARGV"])
code = 0
try:
    from bootenv.__main__ import main
    main()
except SystemExit as exc:
    code = exc.code or 0
heavy = ("libzfs_core", "apt_pkg", "apt", "tabulate", "typer", "click", "bootenv.engine", "bootenv.zfs.fake")
sys.stdout.flush()
print(json.dumps({"code": code, "started": started, "imported": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""

FAKE_LZC = "import os\nopen(os.environ['LZC_MARK'], 'w').close()\n"


def _columns(user_props):
    return ["name", *LIST_PROPERTIES, *dict.fromkeys(user_props)]


def _listing(columns) -> str:
    rows = []
    for i in range(BES):
        name = "rpool/ROOT" if i == 0 else f"rpool/ROOT/be{i}"
        values = {c: "-" for c in columns[1:]}
        values.update(type="filesystem", createtxg=str(i + 1), creation="1764547200", used="1048576", referenced="1048576")
        if i:
            values.update({"mountpoint": "/", "canmount": "noauto", "org.bootenv:title": f"checkpoint {i}"})
        rows.append("\t".join([name, *(values[c] for c in columns[1:])]))
    return "".join(r + "\n" for r in rows)


@pytest.fixture
def bootenv_process(cmds, tmp_path):  # noqa: F811 (fixture)
    for user_props in (USER_PROPS, (*USER_PROPS, *STATUS_PROPS)):
        columns = _columns(user_props)
        cmds.reply("zfs", "list", "-H", "-p", "-r", "-t", "filesystem", "-o", ",".join(columns), stdout=_listing(columns))
    cmds.reply("zpool", "get", stdout="rpool/ROOT/be1\n")
    lzc_dir = tmp_path / "lzc"
    lzc_dir.mkdir()
    (lzc_dir / "libzfs_core.py").write_text(FAKE_LZC)
    mark = tmp_path / "lzc-imported"
    src = os.path.dirname(os.path.dirname(os.path.abspath(__import__("bootenv").__file__)))

    def run(*argv: str, backend: str = "lzc") -> dict:
        env = dict(
            os.environ,
            PYTHONPATH=f"{lzc_dir}:{src}",
            LZC_MARK=str(mark),
            DRIVER_ARGV=json.dumps(list(argv)),
            BOOTENV_ZFS=backend,
            BOOTENV_BE_ROOT="rpool/ROOT",
            BOOTENV_RUNNING="rpool/ROOT/be2",
            BOOTENV_CONFIG=str(tmp_path / "no-bootenv.conf"),
        )
        env.pop("BOOTENV_BOOTLOADER", None)
        start = len(cmds.calls)
        proc = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=60)
        report = json.loads(proc.stderr.strip().splitlines()[-1])
        report.update(stdout=proc.stdout, stderr=proc.stderr, commands=[c[0] for c in cmds.calls[start:]],
                      lzc=mark.exists())
        return report

    return run


GRUB_FIELDS = "active,running,name,title,dataset,referenced,kernels"  # what 42_bootenv asks for


@pytest.mark.parametrize(
    "argv",
    [["list"], ["list", "-H"], ["list", "--json"], ["list", "-H", "-o", GRUB_FIELDS], ["status"], ["status", "--json"], ["-l"]],
)
@pytest.mark.parametrize("backend", ["lzc", "cli"])
def test_a_read_only_command_is_one_zfs_list_and_at_most_one_zpool(bootenv_process, argv, backend):
    got = bootenv_process(*argv, backend=backend)
    assert got["code"] == 0, got["stderr"]
    assert got["commands"].count("zfs") == 1, got["started"]
    assert got["commands"].count("zpool") <= 1, got["started"]
    # sorted: the zpool get runs beside the zfs list (engine.scan), either may log first
    assert sorted(c[0] for c in got["started"]) == sorted(got["commands"]), "a process other than zfs/zpool was started"
    assert not got["lzc"], "libzfs_core was imported by a read-only command"
    assert "apt_pkg" not in got["imported"] and "apt" not in got["imported"]
    assert "bootenv.zfs.fake" not in got["imported"]
    # Plain ASCII titles: not even the table imports tabulate (output.plain_table).
    assert "tabulate" not in got["imported"], "tabulate is for tables of non-ASCII titles only"
    if argv[0] == "list" and "--json" not in argv:
        assert "be4" in got["stdout"]
    if argv[0] in ("list", "-l", "status"):
        # The plain list and status forms never need typer (bootenv/__main__.py) ...
        assert "typer" not in got["imported"] and "click" not in got["imported"]
        # ... and print what the full command line prints.
        full = bootenv_process("--zfs", backend, *argv, backend=backend)
        assert "typer" in full["imported"] and full["code"] == 0
        assert full["stdout"] == got["stdout"]


@pytest.mark.parametrize("command", ["list", "status"])
def test_the_fast_path_fails_as_the_command_line_does(bootenv_process, cmds, command):  # noqa: F811 (fixture)
    cmds.replies.insert(0, {"prefix": ["zfs", "list"], "stdout": "", "stderr": "permission denied\n", "rc": 1})
    cmds._save()
    fast = bootenv_process(command, backend="cli")
    full = bootenv_process("--zfs", "cli", command, backend="cli")
    assert "typer" not in fast["imported"] and "typer" in full["imported"]
    assert fast["code"] == full["code"] == 5
    first = fast["stderr"].splitlines()[0]
    assert first == full["stderr"].splitlines()[0] and first.startswith("bootenv: ") and "permission denied" in first


def test_version_alone_imports_no_cli(bootenv_process):
    got = bootenv_process("--version")
    assert got["code"] == 0
    assert got["stdout"].startswith("bootenv ")
    assert got["started"] == [] and got["commands"] == []
    assert got["imported"] == [], "--version needs no typer, click or backend"


def test_help_imports_no_backend(bootenv_process):
    got = bootenv_process("--help")
    assert got["code"] == 0 and "Usage" in got["stdout"]
    assert got["started"] == []
    assert set(got["imported"]) <= {"typer", "click"}


def test_an_unknown_field_is_the_command_lines_usage_error(bootenv_process):
    got = bootenv_process("list", "-H", "-o", "name,bogus", backend="cli")
    assert got["code"] == 2 and "unknown column" in got["stderr"] and "bogus" in got["stderr"]
