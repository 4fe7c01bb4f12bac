"""The shape of the package: imports point downward only, no circle at
import time, and every module imports on its own.

    cli -> {upgrade, trial} -> engine -> plan -> {zfs, boot, apt} -> {run, model, lock} -> errors
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import bootenv

PACKAGE = pathlib.Path(bootenv.__file__).parent

# A unit (a top-level module or package of bootenv) may import only units
# of a lower rank (and itself).
RANK = {
    "bootenv": 0,  # __init__: the version only
    "errors": 0,
    "crash": 0,  # the crash seam: imports nothing of bootenv's
    "model": 1,
    "run": 1,
    "lock": 1,
    "config": 1,
    "retention": 2,
    "zfs": 2,
    "boot": 2,
    "apt": 2,
    "plan": 3,
    "engine": 4,
    "trial": 5,
    "diff": 5,
    "transfer": 5,
    "doctor": 5,
    "upgrade": 5,
    "repair": 6,  # uses trial's properties
    "grubhome": 6,  # doctor --fix: uses doctor's mount helpers
    "cli": 7,
    "__main__": 8,
}


def module_name(path: pathlib.Path) -> str:
    parts = ["bootenv", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> list[str]:
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def is_module(name: str) -> bool:
    rel = pathlib.Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def imports(path: pathlib.Path, *, module_level_only: bool = False) -> set[str]:
    """The bootenv modules `path` imports (lazy ones too unless
    `module_level_only`; never those under `if TYPE_CHECKING:`)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    found = set()
    for node in nodes:
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("bootenv"):
                continue
            subs = [f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")]
            found |= set(subs) if subs else {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bootenv")}
    return found


def unit(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "bootenv"


def test_every_unit_has_a_rank():
    assert {unit(m) for m in all_modules()} <= set(RANK)


def test_imports_point_downward_only():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        for target in imports(path):
            if unit(target) != unit(me) and RANK[unit(target)] >= RANK[unit(me)]:
                upward.append(f"{me} imports {target}")
    assert upward == []


def test_no_circular_import_between_modules():
    graph = {module_name(p): imports(p, module_level_only=True) for p in PACKAGE.rglob("*.py")}
    # A package's __init__ is imported before any of its modules: importing
    # bootenv.x.y imports bootenv.x too.
    for name in list(graph):
        parent = name.rsplit(".", 1)[0]
        if parent in graph and parent != name:
            graph[name] = graph[name] | {parent}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt.startswith(node + "."):
                continue  # a package importing its own modules
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_every_module_imports_alone():
    """Each module in a fresh interpreter, so no import works only because
    another module happened to be imported first."""
    script = (
        "import importlib, sys, traceback\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for mod in [m for m in sys.modules if m == 'bootenv' or m.startswith('bootenv.')]:\n"
        "        del sys.modules[mod]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    modules = [m for m in all_modules() if not m.endswith("__main__")]
    proc = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_command_line_starts_light():
    """--help and --version never import the engine, a backend, python-apt
    or tabulate (the apt hook and TAB completion pay for start-up)."""
    probe = (
        "import sys, bootenv.cli\n"
        "heavy = ('apt_pkg', 'libzfs_core', 'tabulate', 'bootenv.engine', 'bootenv.zfs.fake', 'bootenv.zfs.cli')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_command_modules_import_context_only():
    """cli/'s command modules share context.py and never import each other
    (cli/__init__.py registers them; output.py is reached through context)."""
    commands = ("bes", "apt", "boot")
    for name in commands:
        cli_imports = {m for m in imports(PACKAGE / "cli" / f"{name}.py") if m.startswith("bootenv.cli")}
        assert cli_imports <= {"bootenv.cli.context"}, name


def test_concrete_backends_are_chosen_in_one_factory_each():
    """Outside its package, zfs/ is reached through zfs.base (the protocol
    and errors) and boot/ through boot.base; only cli/context.py opens a
    concrete one, through zfs.factory and boot.factory. (Pure helpers
    with no backend in them are allowed: see `allowed`.)"""
    # kernels and mountinfo are pure readers (a BE's kernel record, a
    # mount table), no backend: doctor.py reads them as the drivers do;
    # listcache is a text edit of zfs-mount-generator's cache in a BE.
    allowed = {"bootenv.zfs.base", "bootenv.boot.base", "bootenv.boot.kernels", "bootenv.zfs.mountinfo",
               "bootenv.boot.listcache"}
    factories = {"bootenv.zfs.factory", "bootenv.boot.factory"}
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        for target in imports(path):
            if unit(target) in ("zfs", "boot") and unit(target) != unit(me) and target not in allowed:
                if not (me == "bootenv.cli.context" and target in factories):
                    wrong.append(f"{me} imports {target}")
    assert wrong == []
