"""tests/debs.py's repository with a Release file: apt takes its Origin
(what unattended-upgrades matches in the VM's apt-hook scenario) and
keeps trusting the unsigned flat repository."""

from __future__ import annotations

import os
import subprocess

from tests.debs import Deb, FakeAptRoot, build_repo


def test_release_origin_is_what_apt_reports(tmp_path):
    repo = build_repo(tmp_path / "repo", [Deb("hello", "1.0")], origin="bootenv-vmtest")
    build_repo(repo, [Deb("hello", "2.0")], origin="bootenv-vmtest")  # published beside 1.0
    root = FakeAptRoot.create(tmp_path / "root", repo)
    root.update()
    env = {**os.environ, "LC_ALL": "C", "APT_CONFIG": str(root.apt_config)}
    def policy(*args: str) -> str:
        return subprocess.run(["apt-cache", "policy", *args], env=env, check=True, capture_output=True, text=True).stdout

    hello = policy("hello")
    assert "Candidate: 2.0" in hello and "1.0 500" in hello
    assert "release o=bootenv-vmtest,a=bootenv-vmtest," in policy(), policy()
