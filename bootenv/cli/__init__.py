"""The `bootenv` command line (typer). The app, its global options, the
one error boundary and `main` are in commandline.py; the commands live one
family a module (bes.py, apt.py, boot.py), sharing context.py.

This package's __init__ imports nothing: `bootenv.cli.app` and
`bootenv.cli.main` are looked up in commandline.py on first use, so
bootenv/__main__.py can answer `--version` and the plain `list` forms
without importing typer or click (most of what starting bootenv costs).
"""

from __future__ import annotations

_FROM_COMMANDLINE = ("app", "main", "root", "BootenvGroup", "check_utf8")


def __getattr__(name: str):
    if name in _FROM_COMMANDLINE:
        from . import commandline

        return getattr(commandline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
