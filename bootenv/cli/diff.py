"""`bootenv diff` and `bootenv show`: what changed between two BEs
(packages, then files), and one BE in full (properties, lineage,
datasets, its packages against its origin). The comparing is diff.py's."""

from __future__ import annotations

import json
from collections import Counter
from typing import Optional

import click
import typer

from . import context

SELECTOR_ARGS = {"ignore_unknown_options": True}
SELECTOR = "NAME, generation N, -1, @running, @next, @last-good (=NAME for a name that reads as a number)"


def _native(names) -> str:
    """The architecture most packages have: shown without its :arch."""
    archs = Counter(n.rpartition(":")[2] for n in names if n.rpartition(":")[2] != "all")
    return archs.most_common(1)[0][0] if archs else ""


def _short(name: str, native: str) -> str:
    base, _, arch = name.rpartition(":")
    return base if arch in ("all", native) else name


def package_lines(changes, old: str, new: str) -> list[str]:
    """The package part, as rpm-ostree db diff prints it."""
    native = _native(c.name for c in changes)
    lines = []
    for kind, title in (("upgraded", "Upgraded"), ("downgraded", "Downgraded"), ("added", "Added"), ("removed", "Removed")):
        chosen = [c for c in changes if c.kind == kind]
        if not chosen:
            continue
        lines.append(f"{title}:")
        for c in chosen:
            name = _short(c.name, native)
            if kind in ("upgraded", "downgraded"):
                lines.append(f"  {name} {c.old} -> {c.new}")
            else:
                lines.append(f"  {name} {c.new if kind == 'added' else c.old}")
    return lines


def summary_line(result) -> str:
    if result.packages is None:
        parts = [f"packages: not compared ({result.why_no_packages})"]
    else:
        c = result.counts()
        parts = [f"{c['upgraded']} upgraded, {c['downgraded']} downgraded, {c['added']} added, {c['removed']} removed"]
    if result.datasets is not None:
        f = result.file_counts()
        parts.append(
            f"files: {f['added']} added, {f['removed']} removed, {f['modified']} modified, {f['renamed']} renamed"
            f" ({context.human_size(result.written())} written)"
        )
    return "; ".join(parts)


def as_json(result) -> dict:
    data: dict = {"from": result.old, "to": result.new}
    if result.packages is None:
        data["packages"] = None
        data["packages_missing"] = result.why_no_packages
    else:
        data["packages"] = [{"change": c.kind, "name": c.name, "old": c.old, "new": c.new} for c in result.packages]
    if result.datasets is not None:
        data["datasets"] = [
            {
                "dataset": d.rel or "/",
                "method": d.method,
                "written": d.written,
                "files": [{"change": c.change, "path": c.path, "new_path": c.new_path, "type": c.kind} for c in d.changes],
            }
            for d in result.datasets
        ]
    data["summary"] = {"packages": result.counts() if result.packages is not None else None}
    if result.datasets is not None:
        data["summary"]["files"] = result.file_counts()
        data["summary"]["written"] = result.written()
    return data


def print_diff(result, *, scripted: bool, json_out: bool) -> None:
    if json_out:
        click.echo(json.dumps(as_json(result), indent=2))
        return
    if scripted:
        for c in result.packages or []:
            click.echo("\t".join(("package", c.kind, c.name, c.old or "-", c.new or "-")))
        for c in result.files():
            click.echo("\t".join(("file", c.change, c.path, c.new_path or "-")))
        return
    if result.packages is not None:
        lines = package_lines(result.packages, result.old, result.new)
        click.echo(f"Packages from {result.old} to {result.new}:" + ("" if lines else " no change"))
        for line in lines:
            click.echo(line)
    if result.datasets is not None:
        marks = {"added": "+", "removed": "-", "modified": "M", "renamed": "R"}
        for d in result.datasets:
            click.echo(f"Files{' in ' + d.rel.lstrip('/') if d.rel else ''} ({d.method}):" + ("" if d.changes else " no change"))
            for c in d.changes:
                click.echo(f"  {marks[c.change]} {c.path}" + (f" -> {c.new_path}" if c.new_path else ""))
    click.echo(summary_line(result))


def diff(
    ctx: typer.Context,
    old: str = typer.Argument(..., metavar="A", help="The BE to compare from: " + SELECTOR),
    new: Optional[str] = typer.Argument(None, metavar="[B]", help="The BE to compare to (default: the running one)."),
    files: bool = typer.Option(False, "--files", help="Also the files that changed, in every dataset of the BE."),
    scripted: bool = typer.Option(False, "-H", help="Scripted output: one change a line, tab-separated, no summary."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """What changed from BE A to BE B: packages (and files with --files)."""
    if scripted and json_out:
        raise click.UsageError("-H and --json cannot be combined")
    from ..diff import diff_bes

    engine = context.settings(ctx).engine()
    a = engine.select(old)
    b = engine.select(new if new is not None else "@running")
    if files:
        context.require_root(context.settings(ctx), "compare the files of boot environments")
    print_diff(diff_bes(engine, a, b, files=files), scripted=scripted, json_out=json_out)


def lineage(engine, scan, name: str) -> list[dict]:
    """The origin chain of a BE's top: each origin snapshot and the BE
    (or dataset) it belongs to, nearest first."""
    chain, seen = [], set()
    ds = engine.dataset_of(name)
    while ds in scan.datasets and ds not in seen:
        seen.add(ds)
        origin = scan.datasets[ds].origin
        if not origin:
            break
        chain.append({"snapshot": origin, "be": engine.name_of(origin)})
        ds = origin.split("@", 1)[0]
    return chain


def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE: " + SELECTOR),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """A BE in full: properties, lineage, datasets, packages against its origin."""
    from ..apt.manifest import PROP_MANIFEST
    from ..diff import diff_bes
    from ..model import USER_PROPS

    engine = context.settings(ctx).engine()
    scan = engine.scan()
    chosen = engine.select(name, scan)
    be = engine.get(chosen, scan)
    props = engine.zfs.get_props(be.dataset, [*USER_PROPS, PROP_MANIFEST])
    chain = lineage(engine, scan, chosen)
    datasets = [
        {
            "dataset": ds,
            "mountpoint": scan.datasets[ds].props.get("mountpoint"),
            "used": scan.datasets[ds].number("used"),
            "referenced": scan.datasets[ds].number("referenced"),
            "origin": scan.datasets[ds].origin,
        }
        for ds in scan.tree(be.dataset)
    ]
    against = be.origin_be if be.origin_be and engine.dataset_of(be.origin_be) in scan.datasets else None
    packages = diff_bes(engine, against, chosen) if against else None
    if json_out:
        data = context.be_as_dict(be)
        data.update(properties=props, lineage=chain, datasets=datasets)
        data["packages_against_origin"] = as_json(packages) if packages else None
        context.print_json(data)
        return
    click.echo(f"{be.name} ({be.dataset})" + (f"  generation {be.generation}" if be.generation is not None else ""))
    flags = [w for w, on in (("boots next", be.active), ("running", be.running), ("mounted", be.mounted), ("kept", be.keep)) if on]
    if flags:
        click.echo("  " + ", ".join(flags))
    click.echo("Properties:")
    for key in sorted(props):
        click.echo(f"  {key}={props[key]}")
    click.echo("Lineage:" + ("" if chain else " not a clone (it owns its history)"))
    for link in chain:
        click.echo(f"  from {link['snapshot']}" + (f" (BE {link['be']})" if link["be"] else ""))
    click.echo("Datasets:")
    for d in datasets:
        click.echo(f"  {d['dataset']}  mountpoint={d['mountpoint']}  used={context.human_size(d['used'])}  refer={context.human_size(d['referenced'])}")
    if packages is None:
        click.echo("Packages against its origin: no origin BE to compare with")
    else:
        lines = package_lines(packages.packages or [], against, chosen)
        click.echo(f"Packages against its origin {against}:" + ("" if lines or packages.packages is None else " no change"))
        for line in lines:
            click.echo(line)
        click.echo(summary_line(packages))


def register(app: typer.Typer) -> None:
    """Add diff and show to the bootenv app."""
    app.command(context_settings=SELECTOR_ARGS)(diff)
    app.command(context_settings=SELECTOR_ARGS)(show)
