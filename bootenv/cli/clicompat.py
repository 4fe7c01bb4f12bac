"""The exception classes of the click that parses bootenv's command line.

typer <= 0.25 parses with click itself; typer >= 0.26 carries its own copy
of click (`typer._click`, not a distribution of its own) and raises that
copy's UsageError / ClickException / Abort, which are not click's. bootenv
imports click too (click.echo, click.confirm, and the UsageErrors its
commands raise), so the error mapping must catch both families. The
classes are found through typer's public exceptions (`typer.BadParameter`
is a UsageError, `typer.Abort` an Abort), never through a private module.
"""

from __future__ import annotations

import click
import typer


def _both(name: str, *typer_classes: type) -> tuple[type, ...]:
    """click's class called `name`, and typer's own when it is another one."""
    found = [getattr(click, name)]
    for cls in typer_classes:
        found += [c for c in cls.__mro__ if c.__name__ == name and c not in found]
    return tuple(found)


USAGE_ERRORS = _both("UsageError", typer.BadParameter)
CLICK_EXCEPTIONS = _both("ClickException", typer.BadParameter)
ABORTS = _both("Abort", typer.Abort)
