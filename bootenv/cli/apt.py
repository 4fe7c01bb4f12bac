"""The apt commands of the CLI: dist-upgrade, full-upgrade, upgrade,
install, remove, purge (checkpointed apt, see upgrade/upgrader.py), and the apt
hook's `hook pre-invoke` / `hook post-invoke` (see upgrade/hook.py).

Registered by cli/__init__.py; like every command module it imports
context only. Nothing heavy is imported until a command runs: python-apt
only when a plan is made.

The flow of an apt command, as apt itself does it: refresh the lists,
plan, show the plan, ask (never without a terminal unless -y), act. Every
refusal (unknown package, held or broken packages, the apt lock, not
enough space, no network) happens before any dataset is created.
"""

from __future__ import annotations

import sys
from typing import List

import click
import typer

from ..errors import BootenvError, UsageError
from . import context

UPGRADE_HELP = {
    "dist-upgrade": "Upgrade every package, installing and removing as needed, under a checkpoint.",
    "full-upgrade": "Same as dist-upgrade.",
    "upgrade": "Upgrade packages without removing any, under a checkpoint.",
}
PACKAGES_HELP = {
    "install": "Install (or upgrade) PACKAGES under a checkpoint.",
    "remove": "Remove PACKAGES under a checkpoint.",
    "purge": "Remove PACKAGES and their configuration under a checkpoint.",
}
MODE_TEXT = (
    " By default apt runs in a new boot environment (sandbox) when the change"
    " needs a reboot anyway, else on the running system after a checkpoint."
)


def open_packages():
    """The PackageManager the commands use (tests replace this)."""
    from ..apt.packages import default_packages

    return default_packages()


def open_chroot(settings):
    """The chroot factory for sandbox runs (tests replace this). On the
    fake ZFS there is nothing real to bind /dev /proc /sys /run into."""
    from ..upgrade.chroot import Chroot

    if (settings.zfs or "").startswith("fake:"):
        return lambda engine, name: Chroot(engine, name, binds=())
    return Chroot


def _ask_rollback(yes: bool):
    def ask(question: str) -> bool:
        if yes:
            context.say(f"{question} yes (-y)")
            return True
        if not context.stdin_is_tty():
            context.say(f"{question} (no terminal to ask: not rolling back)")
            return False
        return click.confirm(question, default=True)

    return ask


def run_apt(
    ctx: typer.Context,
    action: str,
    packages: List[str],
    *,
    yes: bool,
    sandbox: bool,
    in_place: bool,
    no_update: bool,
    dry_run: bool,
) -> None:
    """Plan, show, ask and carry out one apt request."""
    from ..apt.model import AptError, AptRequest
    from ..upgrade.upgrader import IN_PLACE, SANDBOX, Upgrader

    request = AptRequest(action, tuple(packages))
    if sandbox and in_place:
        raise UsageError("-s/--sandbox and --in-place cannot be combined")
    mode = SANDBOX if sandbox else IN_PLACE if in_place else None
    settings = context.settings(ctx)
    dry_run = context.is_dry_run(ctx, dry_run)
    yes = yes or settings.yes
    what = "change packages and boot environments"
    if not dry_run:
        context.require_root(settings, what)
    command = context.invocation() if sys.argv[1:] else request.text
    upgrader = Upgrader(settings.engine(), open_packages(), chroot=open_chroot(settings), say=context.say)

    if dry_run:
        if not no_update:
            context.say("would run: apt-get update (planning with the package lists there are)")
        prepared = upgrader.prepare(request, mode=mode, update=False, command=command)
        for line in prepared.describe():
            click.echo(line)
        click.echo("Dry run: nothing changed.")
        return

    with context.changing(ctx, what):
        prepared = upgrader.prepare(request, mode=mode, update=not no_update, command=command)
        for line in prepared.describe():
            click.echo(line)
        if prepared.plan.empty:
            click.echo("Nothing to do: no checkpoint taken.")
            return
        if not yes:
            context.confirm("Do you want to continue?")
        outcome = upgrader.execute(prepared, confirm_rollback=_ask_rollback(yes))
    for line in outcome.lines:
        click.echo(line)
    if not outcome.ok:
        raise AptError(outcome.error)


YES = typer.Option(False, "-y", "--yes", help="Do not ask; also roll back without asking if apt fails in place.")
SANDBOX_OPT = typer.Option(False, "-s", "--sandbox", help="Run apt in a new boot environment; the running system is not touched.")
IN_PLACE_OPT = typer.Option(False, "--in-place", help="Checkpoint, then run apt on the running system.")
NO_UPDATE = typer.Option(False, "--no-update", help="Do not run 'apt update' first.")
DRY_RUN = typer.Option(False, "-n", "--dry-run", help="Show the plan, change nothing.")


def _upgrade_command(action: str):
    def command(
        ctx: typer.Context,
        yes: bool = YES,
        sandbox: bool = SANDBOX_OPT,
        in_place: bool = IN_PLACE_OPT,
        no_update: bool = NO_UPDATE,
        dry_run: bool = DRY_RUN,
    ) -> None:
        run_apt(ctx, action, [], yes=yes, sandbox=sandbox, in_place=in_place, no_update=no_update, dry_run=dry_run)

    command.__doc__ = UPGRADE_HELP[action] + MODE_TEXT
    command.__name__ = action.replace("-", "_")
    return command


def _packages_command(action: str):
    def command(
        ctx: typer.Context,
        packages: List[str] = typer.Argument(..., metavar="PACKAGES...", help="Package names."),
        yes: bool = YES,
        sandbox: bool = SANDBOX_OPT,
        in_place: bool = IN_PLACE_OPT,
        no_update: bool = NO_UPDATE,
        dry_run: bool = DRY_RUN,
    ) -> None:
        run_apt(ctx, action, packages, yes=yes, sandbox=sandbox, in_place=in_place, no_update=no_update, dry_run=dry_run)

    command.__doc__ = PACKAGES_HELP[action] + MODE_TEXT
    command.__name__ = action
    return command


hook_app = typer.Typer(
    help="The apt hook (contrib/apt/80bootenv): a checkpoint before apt changes the system.",
    add_completion=False,
)


def _hook(ctx: typer.Context, which: str) -> None:
    """Run a hook phase; whatever goes wrong, say why and let apt go on."""
    from ..upgrade import hook
    from ..zfs.base import ZfsError

    context.refuse_dry_run(ctx, f"hook {which}")
    settings = context.settings(ctx)
    try:
        if which == "pre-invoke":
            hook.pre_invoke(settings.engine, say=context.say)
        else:
            hook.post_invoke(settings.engine)
    except (BootenvError, ZfsError, OSError) as exc:
        context.say(f"bootenv: hook {which}: no checkpoint: {exc} (apt goes on)")
    except Exception as exc:  # a hook must never stop apt
        context.say(f"bootenv: hook {which}: no checkpoint: unexpected {type(exc).__name__}: {exc} (apt goes on)")


@hook_app.command("pre-invoke")
def hook_pre_invoke(ctx: typer.Context) -> None:
    """DPkg::Pre-Invoke: take one checkpoint per apt run."""
    _hook(ctx, "pre-invoke")


@hook_app.command("post-invoke")
def hook_post_invoke(ctx: typer.Context) -> None:
    """DPkg::Post-Invoke: mark this run's checkpoint complete."""
    _hook(ctx, "post-invoke")


def register(app: typer.Typer) -> None:
    """Add the apt commands and the hook group to the bootenv app."""
    for action in UPGRADE_HELP:
        app.command(action)(_upgrade_command(action))
    for action in PACKAGES_HELP:
        app.command(action)(_packages_command(action))
    app.add_typer(hook_app, name="hook")
