"""`python -m bootenv` and the `bootenv` console script.

`bootenv --version` alone is answered here, before the CLI is imported:
it needs nothing but the version, and typer + click are most of what
starting bootenv costs (under emulation, seconds). Everything else goes
to the CLI (cli/__init__.py).
"""

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from . import __version__

        print(f"bootenv {__version__}")
        return
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
