"""`bootenv repair`: find and fix (or explain) what an interrupted bootenv
left (the logic is bootenv/repair.py). Registered by cli/commandline.py;
imports context only."""

from __future__ import annotations

import click
import typer

from . import context


def _lock_text() -> str:
    """What the lock file says before we take it (a stale holder's line)."""
    from ..lock import lock_path

    try:
        with open(lock_path(), encoding="utf-8", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return ""


def repair(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what was found and what would be done, change nothing."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask before destroying."),
    as_json: bool = typer.Option(False, "--json", help="Print what was found, done and left alone as JSON."),
) -> None:
    """Find and fix what an interrupted bootenv left (pending BEs, stray snapshots, a bootfs naming a missing BE)."""
    from ..repair import repair as find

    dry = context.is_dry_run(ctx, dry_run)
    yes = yes or context.settings(ctx).yes
    lock_text = _lock_text()
    if dry:
        report = find(context.settings(ctx).engine(), lock_text)
        _show(report, as_json, done=False, prefix="would ")
        return
    with context.changing(ctx, "repair boot environments") as current:
        report = find(current.engine(), lock_text)
        plan = report.plan
        if not as_json:
            _show(report, False, done=False, prefix="")
        if plan.destroys and not yes:
            context.confirm(f"{plan.summary}?")
        plan.execute(progress=None if as_json else context.progress(len(plan.steps)))
    if as_json:
        _show(report, True, done=True, prefix="")
    elif plan.steps:
        click.echo("Repaired.")


def _show(report, as_json: bool, *, done: bool, prefix: str) -> None:
    if as_json:
        context.print_json({**report.as_dict(), "done": done})
        return
    click.echo(report.plan.summary + (" (dry run: nothing changes)" if prefix else ""))
    for line in report.found:
        click.echo(f"  found: {line}")
    for note in report.plan.notes:
        click.echo(f"  {note}")
    for step in report.plan.steps:
        click.echo(f"  {prefix}{step.text}")
    for line in report.explained:
        click.echo(f"  left alone: {line}")


def register(app: typer.Typer) -> None:
    """Add `repair` to the bootenv app."""
    app.command("repair")(repair)
