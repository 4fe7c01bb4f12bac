"""`python -m bootenv` and the `bootenv` console script.

Two kinds of command line are answered here, before typer and click are
imported (most of what starting bootenv costs: seconds under emulation):

- `bootenv --version` alone: it needs nothing but the version;
- `bootenv list`, `list -H`, `list -H -o FIELDS`, `list --json` and `-l`,
  with no other argument: read-only, what 42_bootenv (`-H -o`), TAB
  completion (`-H`) and scripts run; and `bootenv status` (`--json`),
  which every boot's units and every monitoring script run.
  The settings come from the environment variables the global options
  read (BOOTENV_ZFS, ...), the BEs from the same engine, the output from
  the same formatter (cli/context.py). On any failure nothing has changed,
  and the full command line runs it again to report it the one way every
  error is reported (cli/commandline.py).

Everything else goes to the full command line.
"""

import sys
from typing import Optional

# argv -> (scripted, as_json)
FAST_LISTS = {
    ("list",): (False, False),
    ("-l",): (False, False),
    ("list", "-H"): (True, False),
    ("list", "--json"): (False, True),
}


FAST_STATUS = {("status",): False, ("status", "--json"): True}


def fast_list(scripted: bool, as_json: bool, columns: Optional[str] = None) -> bool:
    """Print the BEs as `bootenv list` does; exit as the CLI's boundary
    does on a BootenvError or ZfsError. Return False on an OSError, an
    unknown column, or a column the plain listing cannot fill (reclaim:
    the full command line does it, or reports it)."""
    from .cli import context

    if context.wants_reclaim(columns):
        return False

    def text():
        engine = context.Settings.from_environment().engine()
        space = engine.boot_pool_space() if not (scripted or as_json) else None
        return context.format_bes(engine.list(), scripted=scripted, as_json=as_json, columns=columns, boot_pool=space), engine

    return _answer(text)


def fast_status(as_json: bool) -> bool:
    """Print what `bootenv status` prints (cli/boot.py's status: one
    listing, one bootfs read); otherwise as fast_list."""
    import json

    from .cli import context
    from .trial import Trial, describe_status

    def text():
        engine = context.Settings.from_environment().engine()
        trial = Trial(engine)
        scan = trial.scan()
        st = trial.status(scan)
        out = json.dumps(st.as_dict(), indent=2) if as_json else describe_status(st, engine.list(scan))
        return out, engine

    return _answer(text)


def _answer(text) -> bool:
    """Print text()'s output (None: nothing), then the residue hint of the
    engine it used (cli/context.py); exit as the CLI's boundary does on a
    BootenvError or ZfsError; False on an OSError or ValueError (the full
    command line runs it again and reports it its one way)."""
    from .cli import context
    from .errors import BootenvError
    from .zfs.base import ZfsError

    try:
        out, engine = text()
        if out is not None:
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
        context.residue_hint(engine)
    except (BootenvError, ZfsError) as exc:
        message, code = context.failure(exc)
        try:
            print(f"bootenv: {message}", file=sys.stderr)
        except OSError:
            pass  # stderr is gone too: the exit code is all that is left
        sys.exit(code)
    except (OSError, ValueError):
        return False
    return True


def main() -> None:
    argv = tuple(sys.argv[1:])
    if argv == ("--version",):
        from . import __version__

        print(f"bootenv {__version__}")
        return
    fast = None
    if argv in FAST_LISTS:
        fast = (*FAST_LISTS[argv], None)
    elif len(argv) == 4 and argv[:3] == ("list", "-H", "-o"):
        fast = (True, False, argv[3])
    try:
        if fast is not None and fast_list(*fast):
            return
        if argv in FAST_STATUS and fast_status(FAST_STATUS[argv]):
            return
    except KeyboardInterrupt:
        from .errors import EXIT_INTERRUPTED

        print("bootenv: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
