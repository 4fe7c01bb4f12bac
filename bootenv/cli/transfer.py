"""`bootenv send` and `bootenv receive`: a BE as a stream, to a file or a
pipe (`bootenv send X | ssh host bootenv receive`). transfer.py does the
work; this module opens the files, refuses terminals and prints."""

from __future__ import annotations

import os
import sys
from typing import Optional

import click
import typer

from . import context

SELECTOR_ARGS = {"ignore_unknown_options": True}


def stdout_is_tty() -> bool:
    """Whether stdout is a terminal (tests replace this)."""
    return sys.stdout.isatty()


def _open_output(path: Optional[str]) -> int:
    """The descriptor the stream goes to: a new file (never one that is
    there: bootenv overwrites nothing it did not make), or stdout."""
    from ..errors import Refused, UsageError

    if path is None:
        if stdout_is_tty():
            raise UsageError("refusing to write a stream to a terminal: redirect stdout, pipe it, or use -o FILE")
        sys.stdout.flush()
        return sys.stdout.fileno()
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Refused(f"{path} exists: bootenv writes a stream to a new file only") from None


def _open_input(path: Optional[str]) -> int:
    from ..errors import UsageError

    if path is None:
        if sys.stdin.isatty():
            raise UsageError("refusing to read a stream from a terminal: pipe one in, or use -i FILE")
        return sys.stdin.fileno()
    return os.open(path, os.O_RDONLY)


def send(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE to send: NAME, generation N, -1, @running, @next, @last-good."),
    base: Optional[str] = typer.Option(None, "--from", metavar="BASE", help="Incremental from this snapshot or bookmark of the BE (a name after @ or #, or a guid); the receiver finds its copy by guid."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="FILE", help="Write the stream to a new FILE (default: stdout, never a terminal)."),
    raw: bool = typer.Option(False, "--raw", help="Raw stream of encrypted datasets (zfs send -w): sent as stored, the key never leaves."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Print what would be sent and its size estimate, send nothing."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="TOKEN", help="Continue an interrupted send from the receiver's token ('bootenv receive --resume')."),
) -> None:
    """Write a BE as a ZFS stream (size estimate and progress on stderr)."""
    from ..transfer import Transfer

    dry = context.is_dry_run(ctx, dry_run)
    if dry:
        engine = context.settings(ctx).engine()
        plan = Transfer(engine, say=context.say).plan_send(name, base=base, raw=raw, dry_run=True, resume=resume)
        _say_estimate(plan)
        click.echo(f"Send {plan.name} (dry run: nothing changes)")
        for note in plan.notes:
            click.echo(f"  would {note}")
        for s in plan.header.streams:
            click.echo(f"  would send {plan.datasets[0]}{s.rel}@{plan.header.snap or '(new snapshot)'} ({s.kind}{' from ' + s.base if s.base else ''})")
        return
    fd = None
    try:
        with context.changing(ctx, "send boot environments") as settings:
            transfer = Transfer(settings.engine(), say=context.say)
            plan = transfer.plan_send(name, base=base, raw=raw, resume=resume)
            fd = _open_output(output)  # after planning: a refused send leaves no file
            transfer.prepare(plan)
        _say_estimate(plan)
        transfer.send(plan, fd)
    finally:
        if fd is not None and output is not None:
            os.close(fd)
    context.say(f"bootenv: sent {plan.name}@{plan.header.snap}; next time: bootenv send {plan.name} --from {plan.header.snap}")


def _say_estimate(plan) -> None:
    size = context.human_size(plan.estimate)
    context.say(f"bootenv: estimated size: {size} ({plan.estimate} bytes{'' if plan.estimate_exact else ', a guess: the snapshot is not taken yet'})")


def receive(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Name of the new BE (default: the sender's)."),
    input_path: Optional[str] = typer.Option(None, "-i", "--input", metavar="FILE", help="Read the stream from FILE (default: stdin, never a terminal)."),
    resume: bool = typer.Option(False, "--resume", help="Print the receive_resume_token of an interrupted receive (for 'bootenv send --resume')."),
) -> None:
    """Receive a stream from 'bootenv send' as a new BE (never mounted)."""
    from ..transfer import Transfer

    context.refuse_dry_run(ctx, "receive")
    if resume:
        engine = context.settings(ctx).engine()
        tokens = Transfer(engine).resume_tokens()
        if name:
            want = engine.dataset_of(name)
            tokens = {ds: t for ds, t in tokens.items() if ds == want or ds.startswith(want + "/")}
        if not tokens:
            from ..errors import BeNotFound

            raise BeNotFound("no interrupted receive to resume here" + (f" for {name}" if name else ""))
        for ds, token in tokens.items():
            click.echo(token if len(tokens) == 1 else f"{ds}\t{token}")
        return
    context.require_root(context.settings(ctx), "receive boot environments")
    fd = _open_input(input_path)
    try:
        transfer = Transfer(context.settings(ctx).engine(), say=context.say)
        received, header = transfer.receive(fd, name)
    finally:
        if input_path is not None:
            os.close(fd)
    with context.changing(ctx, "receive boot environments"):
        be = transfer.finish(received, header)
    click.echo(f"Received boot environment {be.name} (not mounted; try it with: bootenv activate --once {be.name})")


def register(app: typer.Typer) -> None:
    """Add send and receive to the bootenv app."""
    app.command(context_settings=SELECTOR_ARGS)(send)
    app.command()(receive)
