"""`make demo`, guest side: apt-clone's story on a real root-on-ZFS Debian.

Runs INSIDE the runner guest with the cached root-on-ZFS disk attached
($BOOTENV_ROOTDISK): pool `rpool`, BE `rpool/ROOT/debian`, a full Debian
(the release of tests/vm/suites.py). The runner's own / is ext4, so BOOTENV_RUNNING names the BE that
"runs" (mounted where apt plans); a reboot is simulated by switching it.
The packages come from a local repository the demo builds (no network).

  0. a manual checkpoint (bootenv create)
  1. a package whose postinst fails, installed in a sandbox clone: the clone
     is thrown away, the running system never changed (apt-clone Example 1)
  2. the same install of a good package: the new BE has it, three ways on
  3. activate it, "reboot", destroy the old BE (apt-clone Example 3); the
     manual checkpoint, cloned from the old BE, survives (re-pointed by
     promote)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.vm.aptsys import BROKEN, HELLO2, AptSystem, build_test_repo, only_test_sources, sh


def say(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m", flush=True)


def show(system: AptSystem, *args: str, expect_ok: bool = True) -> str:
    print(f"\033[36m# bootenv {' '.join(args)}\033[0m", flush=True)
    if args[0] in ("install", "upgrade", "dist-upgrade", "remove"):
        # bootenv runs in process (to plan on the mounted BE), so apt's own
        # output, streamed by the apt-get process, shows before bootenv's.
        print("(apt's output streams first, bootenv's report follows)", flush=True)
    result = system.bootenv(*args)
    for text in (result.stdout, result.stderr):  # bootenv's report, then its `bootenv: ...` lines
        if text.strip():
            print(text.rstrip(), flush=True)
    if expect_ok and result.exit_code != 0:
        raise SystemExit(f"demo: bootenv {' '.join(args)} exited {result.exit_code}")
    if not expect_ok:
        print(f"(exit status {result.exit_code})", flush=True)
    return result.stdout


def main() -> int:
    if not os.environ.get("BOOTENV_ROOTDISK"):
        print("demo: the root-on-ZFS disk is not attached", file=sys.stderr)
        return 1
    sh("zpool", "import", "-f", "-N", "-R", "/mnt/rpool", "rpool")
    monkeypatch = pytest.MonkeyPatch()
    build_test_repo([HELLO2, BROKEN])
    system = AptSystem("rpool/ROOT", monkeypatch)
    try:
        only_test_sources(system.mnt)
        release = next((line.split("=", 1)[1].strip('"\n') for line in open(f"{system.mnt}/etc/os-release")
                        if line.startswith("PRETTY_NAME=")), "Debian")
        say(f"A root-on-ZFS {release} with one boot environment:")
        print(sh("zfs", "list", "-r", "-o", "name,used,refer,mountpoint", "rpool/ROOT"), flush=True)
        show(system, "list")

        say("0. A manual checkpoint first (snapshot + clone: instant, no space):")
        show(system, "create", "before-demo", "-t", "before the demo")
        show(system, "list")

        say("1. Install a package whose postinst fails, in a sandbox clone (apt-clone Example 1):")
        show(system, "install", "-s", "-y", "broken", expect_ok=False)
        say("The failed clone is gone and the running system never changed:")
        show(system, "list")

        say("2. Install a good package the same way: apt runs in a clone, the running system stays as it is:")
        show(system, "install", "-s", "-y", "hello")
        [new] = [be for be in system.new_bes() if be != "before-demo"]
        show(system, "list")

        say(f"3. Boot {new} next, reboot into it, and destroy the old BE (apt-clone Example 3):")
        show(system, "activate", new)
        system.reboot_into(new)
        print(f"(rebooted: {new} is running now)", flush=True)
        show(system, "list")
        show(system, "destroy", "-y", "debian")
        show(system, "list")
        print(sh("zfs", "list", "-r", "-t", "all", "-o", "name,origin,used,refer", "rpool/ROOT"), flush=True)
        say("Demo done.")
        return 0
    finally:
        system.close()
        monkeypatch.undo()
        subprocess.run(["zpool", "export", "-f", "rpool"], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
