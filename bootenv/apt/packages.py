"""The package side of an upgrade, behind one small interface.

`PackageManager` is what upgrade/upgrader.py needs from apt: refresh the package
lists, plan a request, run it (on the running system, or chrooted into a
mounted BE). `AptPackages` is the real one: python-apt plans (planner.py),
apt-get runs, with its own progress shown live. Tests and the benchmark
use `FakePackages` (fake.py) instead.

Every apt-get bootenv starts carries BOOTENV_APT=1 in its environment, so
the DPkg::Pre-Invoke hook (upgrade/hook.py) knows bootenv already took the
checkpoint and does not take a second one.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Protocol

from .model import AptPlan, AptRequest, UpdateFailed

ENV_DRIVEN = "BOOTENV_APT"  # set in apt's environment when bootenv drives it


class PackageManager(Protocol):
    def update(self) -> None:
        """Refresh the package lists (apt update). Raise UpdateFailed."""

    def plan(self, request: AptRequest) -> AptPlan:
        """What apt would do for `request`; changes nothing. Raise the
        errors of apt/model.py."""

    def run(self, request: AptRequest, root: Optional[str] = None) -> int:
        """Carry the request out, on the running system (root None) or in
        the BE mounted at `root` (chrooted; the mounts are the caller's).
        Return apt's exit status."""


def _echo(line: str) -> None:
    print(line, flush=True)


class AptPackages:
    """python-apt for planning, apt-get for running.

    `root` is the system planned for (default /); `config` adds apt_pkg
    settings for planning and `apt_config` an APT_CONFIG file for the
    apt-get processes (tests use both to point apt at a fake apt root);
    `runner` is run.py's Runner (dry-run, tests)."""

    def __init__(
        self,
        *,
        root: str = "/",
        config: Optional[Mapping[str, str]] = None,
        apt_config: Optional[str] = None,
        runner=None,
        echo: Callable[[str], None] = _echo,
    ):
        self.root = root
        self.config = dict(config or {})
        self.apt_config = apt_config
        self.runner = runner
        self.echo = echo

    def _env(self, root: Optional[str] = None) -> dict[str, str]:
        """apt-get's environment. APT_CONFIG names a file on this system:
        chrooted into a BE (`root`) it would point apt at a path that does
        not exist there (apt refuses to start), so it is left out."""
        env = {ENV_DRIVEN: "1"}
        if self.apt_config and not root:
            env["APT_CONFIG"] = self.apt_config
        return env

    def update(self) -> None:
        from ..run import run_live

        argv = ["apt-get", "update", "--error-on=any"]
        status, output = run_live(argv, runner=self.runner, env=self._env(), tee=self.echo)
        if status != 0:
            problems = [line for line in output.splitlines() if line.startswith(("E:", "W:", "Err:"))]
            detail = problems[0] if problems else f"exit status {status}"
            raise UpdateFailed(
                f"apt-get update failed ({detail}); nothing was changed. No network to the mirror? "
                "Fix it, or plan with the lists you have: --no-update"
            )

    def plan(self, request: AptRequest) -> AptPlan:
        from .planner import plan

        return plan(request, root=self.root, config=self.config)

    def argv(self, request: AptRequest, root: Optional[str] = None) -> list[str]:
        """The command line that carries `request` out: apt-get -y (bootenv
        asked already), never waiting for the dpkg lock."""
        argv = ["apt-get", "-y", "-o", "DPkg::Lock::Timeout=0", *request.apt_args()]
        return ["chroot", root, *argv] if root else argv

    def run(self, request: AptRequest, root: Optional[str] = None) -> int:
        from ..run import run_live

        # Ctrl-C: apt ignores SIGINT while dpkg runs. On the running system
        # let it finish what it can (30 s); in a sandbox, which is thrown
        # away, stop it soon (the chroot then stops dpkg: upgrade/chroot_procs.py).
        status, _ = run_live(self.argv(request, root), runner=self.runner, env=self._env(root),
                             interrupt_wait=3.0 if root else 30.0)
        return status


def default_packages() -> PackageManager:
    """The package manager the CLI uses."""
    return AptPackages()


__all__ = ["ENV_DRIVEN", "PackageManager", "AptPackages", "default_packages"]
