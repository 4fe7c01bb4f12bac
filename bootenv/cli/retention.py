"""Going back and letting go: rollback, prune, keep, unkeep (the engine
decides, engine.py and retention.py). Registered by cli/__init__.py;
imports context only."""

from __future__ import annotations

from typing import List, Optional

import click
import typer

from . import context


def rollback(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Trial boot: the next boot only; kept if 'bootenv confirm' succeeds on it."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Go back to the BE the running one came from (the checkpoint taken
    before the last change); a second rollback returns."""
    if once:
        from ..trial import Trial

        def build(engine):
            running, target, why = engine.rollback_target()
            plan = Trial(engine).plan_activate_once(target.name)
            plan.summary = f"Roll back from {running.name} to {target.name} for the next boot only"
            plan.notes[:0] = engine.rollback_notes(running, target, why)
            engine.rollback_step(plan, running, target)
            return plan

        be = context.apply(ctx, build, dry_run=dry_run)
        if be is not None:
            click.echo(f"Rolled back: {be.name} will be used on the next boot only (trial: run 'bootenv confirm' on it to keep it)")
        return
    be = context.apply(ctx, lambda engine: engine.plan_rollback(), dry_run=dry_run)
    if be is not None:
        click.echo(f"Rolled back: {be.name} will be used on the next boot")


def prune(
    ctx: typer.Context,
    selectors: Optional[List[str]] = typer.Argument(None, metavar="[BE]...", help="Only these may go (names, generations, ranges 3..7, ages 30d: older than); the policy still decides."),
    keep_auto: Optional[int] = typer.Option(None, "--keep", metavar="N", help="Keep the newest N automatic checkpoints (keep_auto)."),
    keep_age: Optional[str] = typer.Option(None, "--keep-age", metavar="AGE", help="Keep automatic checkpoints younger than AGE: 30d, 12h, 2w (keep_age)."),
    keep_min: Optional[int] = typer.Option(None, "--keep-min", metavar="M", help="Keep at least the newest M whatever their age or the space (keep_min)."),
    space_floor: Optional[int] = typer.Option(None, "--space-floor", metavar="PCT", help="Below PCT% pool free, prune down to keep_min (space_floor)."),
    manual: bool = typer.Option(False, "--manual", help="Manual BEs are candidates too (never by default)."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would go and the space it frees, change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (every BE's decision, the space) as JSON; with -n changes nothing."),
) -> None:
    """Destroy the checkpoints the retention policy lets go (bootenv.conf:
    keep_auto, keep_age, keep_min, space_floor, prune_manual)."""
    overrides = {
        "keep_auto": str(keep_auto) if keep_auto is not None else None,
        "keep_age": keep_age,
        "keep_min": str(keep_min) if keep_min is not None else None,
        "space_floor": str(space_floor) if space_floor is not None else None,
        "prune_manual": "yes" if manual else None,
    }

    dry = context.is_dry_run(ctx, dry_run)

    def build(engine):
        policy = engine.policy({k: v for k, v in overrides.items() if v is not None})
        plan = engine.plan_prune(policy, strict=dry, only=list(selectors) if selectors else None)
        if not as_json:
            context.note_reclaim(plan)
            plan.notes[:0] = prune_table(plan.result)
        return plan

    if as_json:
        # JSON: the plan (what goes, why, what it frees), then the outcome.
        holder = {}

        def capture(engine):
            holder["plan"] = plan = build(engine)
            return plan

        context.apply(ctx, capture, yes=yes, dry_run=dry, quiet=True, silent=True)
        plan = holder["plan"]
        context.print_json(prune_as_dict(plan, done=not dry))
        return
    plan_result = context.apply(ctx, build, yes=yes, dry_run=dry_run)
    if plan_result is not None:
        gone = plan_result.destroyed
        click.echo(f"Pruned {len(gone)} boot environment{'s' if len(gone) != 1 else ''}" + (f": {', '.join(gone)}" if gone else ""))


def prune_table(result) -> list[str]:
    """Every BE's decision, newest first, for people."""
    lines = []
    for d in result.decisions:
        gen = str(d.be.generation) if d.be.generation is not None else "-"
        lines.append(f"{d.action:7} {gen:>4}  {d.be.name}  ({d.be.kind or 'manual'}: {d.reason})")
    return lines


def prune_as_dict(plan, *, done: bool) -> dict:
    result = plan.result
    per, total = plan.reclaim if plan.reclaim else ({}, 0)
    return {
        "summary": plan.summary,
        "dry_run": not done,
        "pressure": result.pressure,
        "free_percent": result.free_percent,
        "decisions": [
            {
                "name": d.be.name,
                "generation": d.be.generation,
                "kind": d.be.kind,
                "created": d.be.created,
                "action": d.action,
                "reason": d.reason,
                "reclaim": per.get(d.be.name),
            }
            for d in result.decisions
        ],
        "destroy": result.destroyed,
        "reclaim_total": total,
        "notes": plan.notes,
        "steps": [s.text for s in plan.steps],
    }


def keep(ctx: typer.Context, name: str = typer.Argument(..., help="The BE to pin.")) -> None:
    """Pin a BE: prune never takes it."""
    context.apply(ctx, lambda engine: engine.plan_keep(engine.select(name), True), quiet=True)


def unkeep(ctx: typer.Context, name: str = typer.Argument(..., help="The BE to unpin.")) -> None:
    """Unpin a BE: prune may take it again."""
    context.apply(ctx, lambda engine: engine.plan_keep(engine.select(name), False), quiet=True)


def register(app: typer.Typer) -> None:
    """Add rollback, prune, keep, unkeep to the bootenv app."""
    app.command()(rollback)
    for command in (prune, keep, unkeep):
        app.command(context_settings={"ignore_unknown_options": True})(command)  # selectors like -1
