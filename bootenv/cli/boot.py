"""Boot commands: `status`, `confirm`, `fallback` and the hidden
`boot-started` run by bootenv-boot.service (trial.py has the design).
`activate --once` lives on the `activate` command in bes.py.

Registered by cli/__init__.py; imports context only.
"""

from __future__ import annotations

import os

import click
import typer

from . import context

HEALTH_DIR_ENV = "BOOTENV_HEALTH_DIR"


def _trial(engine):
    from ..trial import Trial

    return Trial(engine)


def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Show the running BE, the next boot, whether this boot is a trial, and the last good BE."""
    from ..trial import describe_status

    engine = context.settings(ctx).engine()
    trial = _trial(engine)
    scan = trial.scan()  # one listing, one bootfs read: status and the BEs both come from it
    st = trial.status(scan)
    if as_json:
        context.print_json(st.as_dict())
    else:
        click.echo(describe_status(st, engine.list(scan)))
    context.residue_hint(engine)


def confirm(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Mark this boot good after the /etc/bootenv/health.d checks pass; a trial BE becomes the default."""
    from ..trial import HEALTH_DIR, HealthCheckFailed, run_health_checks

    dry_run = context.is_dry_run(ctx, dry_run)
    failure = run_health_checks(os.environ.get(HEALTH_DIR_ENV) or HEALTH_DIR)
    message = context.apply(ctx, lambda engine: _trial(engine).plan_confirm(failure), dry_run=dry_run, quiet=True)
    if failure:
        if dry_run:
            raise HealthCheckFailed(failure)
        raise HealthCheckFailed(str(message))
    if message is not None:
        click.echo(message)


def fallback(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Abandon the trial boot (or, without one, activate the last good BE)."""
    name = context.apply(ctx, lambda engine: _trial(engine).plan_fallback(), dry_run=dry_run)
    if name is not None:
        click.echo(f"{name} will be used on the next boot")


def boot_started(ctx: typer.Context) -> None:
    """Early in boot: end the one-shot, count the trial boot, or abandon a trial that failed."""
    context.refuse_dry_run(ctx, "boot-started")
    message = context.apply(ctx, lambda engine: _trial(engine).plan_boot_started(), quiet=True)
    if message:
        click.echo(f"bootenv: {message}")


def register(app: typer.Typer) -> None:
    """Add the boot commands to the main app."""
    app.command("status")(status)
    app.command("confirm")(confirm)
    app.command("fallback")(fallback)
    app.command("boot-started", hidden=True)(boot_started)
