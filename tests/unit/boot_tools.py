"""A recording stand-in for the bootloader tools, injected as the drivers'
runner: it records every argv and emulates what the tests need
(grub-editenv on a real file, findmnt answers, bootctl's EFI variables)."""

from __future__ import annotations

import subprocess
from typing import Optional, Sequence

from bootenv.zfs.run import CommandFailed


def write_grubenv(path: str, env: dict[str, str]) -> None:
    """Write a 1024-byte GRUB environment block, as grub-editenv does."""
    body = "# GRUB Environment Block\n" + "".join(
        f"{k}={v.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}\n" for k, v in env.items()
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(body + "#" * (1024 - len(body)))


class FakeTools:
    def __init__(self, mounts: Optional[dict[str, tuple[str, str]]] = None, efivars: Optional[str] = None):
        self.calls: list[list[str]] = []
        self.mutating: list[list[str]] = []
        # findmnt answers: path -> (fstype, source); others: nothing mounted.
        self.mounts = dict(mounts or {})
        self.efi: dict[str, str] = {}
        self.efivars = efivars  # write bootctl's variables here, as the kernel shows them
        self.fail: dict[str, str] = {}

    def run(self, argv: Sequence[str], *, mutating: bool = False, check: bool = True, **_kw):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if mutating:
            self.mutating.append(argv)
        prog = argv[0]
        if prog in self.fail:
            if check:
                raise CommandFailed(argv, 1, "", self.fail[prog])
            return subprocess.CompletedProcess(argv, 1, "", self.fail[prog])
        out = ""
        if prog == "grub-editenv":
            self._editenv(argv[1], argv[2], argv[3:])
        elif prog == "findmnt":
            path = argv[-1]
            if "-T" in argv:  # the filesystem containing path
                best = max((p for p in self.mounts if path == p or path.startswith(p.rstrip("/") + "/")), key=len, default=None)
            else:
                best = path if path in self.mounts else None
            if best is not None:
                out = " ".join(self.mounts[best]) + "\n"
        elif prog == "bootctl":
            var = {"set-default": "LoaderEntryDefault", "set-oneshot": "LoaderEntryOneShot"}.get(argv[1])
            if var:
                self.set_efi(var, argv[2])
        return subprocess.CompletedProcess(argv, 0, out, "")

    def _editenv(self, path: str, cmd: str, args: list[str]) -> None:
        from bootenv.boot.grub import parse_grubenv

        try:
            with open(path, encoding="utf-8") as f:
                env = parse_grubenv(f.read())
        except FileNotFoundError:
            if cmd not in ("create", "set"):
                raise
            env = {}
        if cmd == "set":
            for arg in args:
                k, _, v = arg.partition("=")
                env[k] = v
        elif cmd == "unset":
            for k in args:
                env.pop(k, None)
        write_grubenv(path, env)

    def named(self, prog: str) -> list[list[str]]:
        return [c for c in self.mutating if c[0] == prog]

    def set_efi(self, var: str, value: str) -> None:
        """Set (or with "" delete) a systemd-boot loader variable."""
        import os

        from bootenv.boot.systemd_boot import LOADER_GUID

        self.efi[var] = value
        if not self.efivars:
            return
        path = os.path.join(self.efivars, f"{var}-{LOADER_GUID}")
        if not value:
            if os.path.exists(path):
                os.unlink(path)
            return
        os.makedirs(self.efivars, exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"\x07\x00\x00\x00" + (value + "\0").encode("utf-16-le"))
