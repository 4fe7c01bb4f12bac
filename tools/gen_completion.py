#!/usr/bin/env python3
"""Write bootenv's bash completion: a static script made from the command
tree (`typer.main.get_command(bootenv.cli.app)`), so a TAB runs no Python
at all, except `bootenv list -H` where a BE name is expected (through the
zfs command, `--zfs cli`: no pyzfs, no python-apt).

    tools/gen_completion.py [-o FILE]      (stdout without -o)

Run at build time by debian/rules (installed by dh_bash-completion as
/usr/share/bash-completion/completions/bootenv) and by `make completion`.
What a value or argument completes to is declared below (VALUES,
ARGUMENTS); one that names a command or option the tree no longer has
stops the generator, so the table cannot drift from the CLI unnoticed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# What the value of an option completes to, by (command path, option):
# "be" an existing BE name, "dir" a directory, "file" a file, "=WORDS" one of these words,
# "none" nothing (free text). Options not listed complete to nothing.
VALUES: Dict[tuple, str] = {
    ("", "-a"): "be",
    ("", "-r"): "be",
    ("", "--zfs"): "=auto lzc cli fake:",
    ("", "--bootloader"): "=auto bootfs grub systemd-boot zfsbootmenu",
    ("create", "--from"): "be",
    ("send", "-o"): "file",
    ("send", "--output"): "file",
    ("receive", "-i"): "file",
    ("receive", "--input"): "file",
    ("list", "-o"): "=active running gen name title created used reclaim kind state origin keep",
    ("list", "--columns"): "=active running gen name title created used reclaim kind state origin keep",
}

# What a positional argument completes to, by (command path, parameter
# name): the kinds above plus "pkg" (an available package, as apt-get
# install completes) and "installed" (an installed one).
ARGUMENTS: Dict[tuple, str] = {
    ("activate", "name"): "be",
    ("destroy", "names"): "be",
    ("keep", "name"): "be",
    ("prune", "selectors"): "be",
    ("unkeep", "name"): "be",
    ("rename", "old"): "be",
    ("describe", "name"): "be",
    ("mount", "name"): "be",
    ("mount", "path"): "dir",
    ("unmount", "name"): "be",
    ("diff", "old"): "be",
    ("diff", "new"): "be",
    ("show", "name"): "be",
    ("send", "name"): "be",
    ("install", "packages"): "pkg",
    ("remove", "packages"): "installed",
    ("purge", "packages"): "installed",
}


@dataclass
class Node:
    """One command (or group) of the tree, as the completion needs it."""

    path: str  # "" for bootenv itself, "hook pre-invoke" for a subcommand's
    subcommands: List[str] = field(default_factory=list)
    options: List[str] = field(default_factory=list)  # shown (not hidden)
    takes_value: Dict[str, str] = field(default_factory=dict)  # option -> kind, hidden ones too
    arguments: List[tuple] = field(default_factory=list)  # (name, kind, variadic)


def walk(command, ctx, path: str = "") -> List[Node]:
    """Given a click command and its context, return its node and its
    subcommands' nodes (hidden commands are left out)."""
    node = Node(path)
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            node.arguments.append((param.name, ARGUMENTS.get((path, param.name), "none"), param.nargs == -1))
            continue
        opts = list(param.opts) + list(param.secondary_opts)
        if not getattr(param, "hidden", False):
            node.options += opts
        if not (param.is_flag or param.count):
            for opt in opts:
                node.takes_value[opt] = VALUES.get((path, opt), "none")
    nodes = [node]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if sub.hidden:
            continue
        node.subcommands.append(name)
        sub_ctx = sub.context_class(sub, parent=ctx, info_name=name, **sub.context_settings)
        nodes += walk(sub, sub_ctx, f"{path} {name}".strip())
    return nodes


def command_tree(app=None) -> List[Node]:
    """The nodes of bootenv's CLI (or of another typer app)."""
    import typer.main

    if app is None:
        from bootenv.cli import app
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="bootenv", **group.context_settings)
    nodes = walk(group, ctx)
    check_tables(nodes)
    return nodes


def check_tables(nodes: List[Node]) -> None:
    """Raise SystemExit if VALUES or ARGUMENTS name what the tree lacks."""
    by_path = {n.path: n for n in nodes}
    stale = [
        f"option {opt} of {path or 'bootenv'!r}"
        for (path, opt) in VALUES
        if path not in by_path or opt not in by_path[path].takes_value
    ] + [
        f"argument {arg} of {path!r}"
        for (path, arg) in ARGUMENTS
        if path not in by_path or arg not in [a[0] for a in by_path[path].arguments]
    ]
    if stale:
        raise SystemExit("gen_completion: the CLI has no " + ", no ".join(stale) + ": update VALUES/ARGUMENTS")


def _q(text: str) -> str:
    """Single-quote for bash."""
    return "'" + text.replace("'", "'\\''") + "'"


def _case(name: str, doc: str, entries: List[tuple]) -> List[str]:
    """A bash function NAME KEY that sets REPLY from a case table (a key
    ending in * is a pattern: the part before it quoted, then *)."""
    lines = [f"# {doc}", f"{name}() {{", '    case "$1" in']
    for key, value in entries:
        pattern = _q(key[:-1]) + "*" if key.endswith("*") else _q(key)
        lines.append(f"        {pattern}) REPLY={_q(value)} ;;")
    lines += ["        *) REPLY= ;;", "    esac", "}", ""]
    return lines


SCRIPT = r"""
# The BE names `bootenv list -H` prints (third tab-separated field), asked
# with the --zfs and --be-root given on the line; through the zfs command
# (--zfs cli) unless one was given or BOOTENV_ZFS is set.
_bootenv_bes() {
    local -a how=("${_bootenv_global[@]}")
    local a c name rest
    if [[ " ${how[*]} " != *" --zfs "* && -z ${BOOTENV_ZFS:-} ]]; then
        how=(--zfs cli "${how[@]}")
    fi
    BES=()
    while IFS=$'\t' read -r a c name rest; do
        [[ -n $name ]] && BES+=("$name")
    done < <("${COMP_WORDS[0]}" "${how[@]}" list -H 2>/dev/null)
}

# Complete the current word as KIND (see tools/gen_completion.py).
_bootenv_complete_kind() {
    local kind=$1 cur=$2
    case $kind in
        be)
            if [[ $cur == @* ]]; then  # selectors (bootenv(8), SELECTORS)
                COMPREPLY=($(compgen -W "@running @next @last-good" -- "$cur"))
                return
            fi
            local -a BES
            _bootenv_bes
            COMPREPLY=($(compgen -W "${BES[*]}" -- "$cur")) ;;
        dir)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur")) ;;
        file)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        pkg)
            COMPREPLY=($(apt-cache --no-generate pkgnames "$cur" 2>/dev/null)) ;;
        installed)
            COMPREPLY=($(compgen -W "$(dpkg-query -W -f '${db:Status-Status} ${Package}\n' 2>/dev/null | awk '$1 == "installed" { print $2 }')" -- "$cur")) ;;
        =*)
            COMPREPLY=($(compgen -W "${kind#=}" -- "$cur")) ;;
        *)
            COMPREPLY=() ;;
    esac
}

_bootenv() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local path="" word kind="" i npos=0 dashdash=""
    local -a _bootenv_global=()
    local REPLY
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ -n $kind ]]; then
            # The value of the option before.
            [[ -z $path && ( $kind == "|--zfs" || $kind == "|--be-root" ) ]] && _bootenv_global+=("${kind#|}" "$word")
            kind=""
            continue
        fi
        if [[ -z $dashdash && $word == -- ]]; then
            dashdash=1
        elif [[ -z $dashdash && $word == -* ]]; then
            _bootenv_value "$path|${word%%=*}"
            [[ -n $REPLY && $word != *=* ]] && kind="$path|$word"
        else
            _bootenv_subcommands "$path"
            if ((npos == 0)) && [[ -n $REPLY && " $REPLY " == *" $word "* ]]; then
                path="${path:+$path }$word"
            else
                npos=$((npos + 1))
            fi
        fi
    done
    if [[ -n $kind ]]; then
        _bootenv_value "$kind"
        _bootenv_complete_kind "$REPLY" "$cur"
        return 0
    fi
    if [[ -z $dashdash && $cur == -* ]]; then
        _bootenv_options "$path"
        COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
        return 0
    fi
    _bootenv_subcommands "$path"
    if [[ -n $REPLY ]] && ((npos == 0)); then
        COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
        return 0
    fi
    _bootenv_argument "$path|$npos"
    _bootenv_complete_kind "$REPLY" "$cur"
    return 0
}
complete -F _bootenv bootenv
"""


def render(nodes: List[Node], version: Optional[str] = None) -> str:
    """The bash completion script for these nodes."""
    lines = [
        "# bash completion for bootenv                             -*- shell-script -*-",
        f"# Generated by tools/gen_completion.py from the command tree of bootenv {version or ''}".rstrip()
        + ": do not edit.",
        "# Static: a TAB runs nothing but `bootenv list -H`, and only where a BE name goes.",
        "",
    ]
    lines += _case(
        "_bootenv_subcommands", "The subcommands of a command path.", [(n.path, " ".join(n.subcommands)) for n in nodes]
    )
    lines += _case(
        "_bootenv_options", "The options a command path shows.", [(n.path, " ".join(n.options)) for n in nodes]
    )
    lines += _case(
        "_bootenv_value",
        "PATH|OPTION: what the option's value completes to (empty: a flag, or no such option).",
        [(f"{n.path}|{opt}", kind) for n in nodes for opt, kind in n.takes_value.items()],
    )
    args = []
    for n in nodes:
        for index, (_name, kind, variadic) in enumerate(n.arguments):
            # A variadic argument (the last) takes every later position.
            args.append((f"{n.path}|" + ("*" if variadic else str(index)), kind))
    lines += _case("_bootenv_argument", "PATH|N: what the Nth (from 0) positional argument completes to.", args)
    return "\n".join(lines) + SCRIPT


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", help="write here (default: stdout)")
    args = parser.parse_args(argv)
    from bootenv import __version__

    text = render(command_tree(), __version__)
    if args.output:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
