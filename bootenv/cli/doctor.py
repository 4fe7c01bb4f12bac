"""`bootenv doctor`: the layout this machine has and what works on it
(bootenv/doctor.py decides). Read-only; exits 1 when a rollback would not
boot. Registered by cli/commandline.py; imports context only."""

from __future__ import annotations

import click
import typer

from . import context

ROOT = "/"  # the running system's files (tests point it at a tree of their own)


def doctor(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Name the layout found (BE root, /boot, bootloader, ESP, encryption, shared datasets) and what works on it; exit 1 when a rollback would not boot."""
    from ..doctor import Doctor, read_mounts
    from ..errors import EXIT_FAILURE

    engine = context.settings(ctx).engine()
    diagnosis = Doctor(engine, read_mounts(), bootloader=engine.bootloader.name, root=ROOT).diagnose()
    if as_json:
        context.print_json(diagnosis.as_dict())
    else:
        click.echo(diagnosis.describe())
    if not diagnosis.rollback_boots:
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
