"""Build .deb packages and a local apt repository from test definitions.

Host tests use it for a fake apt root (python-apt plans against a real
`file:` repository); the VM tests use the same repository inside the guest
(v1 -> v2 upgrades, a postinst that fails). Needs dpkg-deb and
dpkg-scanpackages (dpkg-dev); nothing is installed on the host.

    repo = build_repo(tmp / "repo", [Deb("hello", "1.0"), Deb("hello", "2.0")])
    root = FakeAptRoot.create(tmp / "root", repo, installed=[Deb("hello", "1.0")])
    root.config      # apt_pkg settings for python-apt (planner.plan(config=...))
    root.apt_config  # an APT_CONFIG file for apt-get processes
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence


@dataclass(frozen=True)
class Deb:
    """One binary package: control fields, files, maintainer scripts."""

    name: str
    version: str
    depends: str = ""
    provides: str = ""
    files: Mapping[str, str] = field(default_factory=dict)  # path in the package -> content
    postinst: Optional[str] = None  # shell script body (after #!/bin/sh)
    preinst: Optional[str] = None
    arch: str = "all"
    priority: str = "optional"
    section: str = "misc"
    installed_kib: Optional[int] = None  # Installed-Size; default from the files

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{self.arch}.deb"

    def installed_size(self) -> int:
        if self.installed_kib is not None:
            return self.installed_kib
        return max(1, sum(len(c.encode()) for c in self.files.values()) // 1024 + 1)

    def control(self) -> str:
        lines = [
            f"Package: {self.name}",
            f"Version: {self.version}",
            f"Architecture: {self.arch}",
            "Maintainer: bootenv tests <tests@bootenv.invalid>",
            f"Installed-Size: {self.installed_size()}",
            f"Priority: {self.priority}",
            f"Section: {self.section}",
        ]
        if self.depends:
            lines.append(f"Depends: {self.depends}")
        if self.provides:
            lines.append(f"Provides: {self.provides}")
        lines.append(f"Description: test package {self.name} {self.version}")
        return "\n".join(lines) + "\n"

    def status_stanza(self, state: str = "install ok installed") -> str:
        """This package as /var/lib/dpkg/status lists an installed one
        (`hold ok installed` for a package on hold)."""
        control = self.control().replace(
            f"Package: {self.name}\n", f"Package: {self.name}\nStatus: {state}\n", 1
        )
        return control + "\n"


def build_deb(deb: Deb, outdir: Path) -> Path:
    """Build `deb` with dpkg-deb into `outdir`; return the .deb path."""
    outdir.mkdir(parents=True, exist_ok=True)
    tree = outdir / f".build-{deb.name}-{deb.version}"
    debian = tree / "DEBIAN"
    debian.mkdir(parents=True, exist_ok=True)
    (debian / "control").write_text(deb.control())
    for script, body in (("postinst", deb.postinst), ("preinst", deb.preinst)):
        if body is not None:
            path = debian / script
            path.write_text("#!/bin/sh\nset -e\n" + textwrap.dedent(body).strip() + "\n")
            path.chmod(0o755)
    for rel, content in deb.files.items():
        path = tree / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    out = outdir / deb.filename
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": "1700000000"},
    )
    return out


def build_repo(repo: Path, debs: Iterable[Deb], origin: Optional[str] = None) -> Path:
    """Build every deb into `repo` and index them (a flat repository:
    `deb [trusted=yes] file:REPO ./`). Return `repo`. With `origin`, also
    write an (unsigned) Release file naming it as Origin, Label and Suite:
    what unattended-upgrades' Origins-Pattern matches on. Debs already in
    `repo` stay in the index (publish 2.0 beside 1.0)."""
    repo.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        build_deb(deb, repo)
    index = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    (repo / "Packages").write_text(index)
    if origin:
        (repo / "Release").write_text(release_file(index.encode(), origin))
    return repo


def release_file(packages: bytes, origin: str) -> str:
    """A flat repository's Release for its Packages index."""
    digest = hashlib.sha256(packages).hexdigest()
    return (
        f"Origin: {origin}\nLabel: {origin}\nSuite: {origin}\nCodename: {origin}\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n {digest} {len(packages)} Packages\n"
    )


def sources_line(repo: Path) -> str:
    return f"deb [trusted=yes] file:{repo.resolve()} ./\n"


@dataclass
class FakeAptRoot:
    """A directory apt treats as a system: etc/apt (sources), var/lib/dpkg
    (status), var/lib/apt/lists, var/cache/apt. `config` points python-apt
    at it, `apt_config` (a file for APT_CONFIG) points apt-get at it."""

    path: Path
    config: dict[str, str]
    apt_config: Path

    @classmethod
    def create(
        cls,
        path: Path,
        repo: Optional[Path],
        installed: Sequence[Deb] = (),
        held: Sequence[str] = (),
    ) -> "FakeAptRoot":
        for rel in (
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/info",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
        ):
            (path / rel).mkdir(parents=True, exist_ok=True)
        (path / "etc/apt/sources.list").write_text(sources_line(repo) if repo else "")
        status = "".join(d.status_stanza("hold ok installed" if d.name in held else "install ok installed") for d in installed)
        (path / "var/lib/dpkg/status").write_text(status)
        root = str(path.resolve())
        config = {
            "Dir": root + "/",
            "Dir::State::status": root + "/var/lib/dpkg/status",
            "Dir::Etc": "etc/apt/",
            "Dir::Etc::sourcelist": "sources.list",
            "Dir::Etc::sourceparts": "sources.list.d",
            "Dir::Etc::parts": "apt.conf.d",
            "Dir::Etc::preferences": "preferences",
            "Dir::Etc::preferencesparts": "preferences.d",
            "Dir::State": "var/lib/apt/",
            "Dir::State::lists": "lists/",
            "Dir::Cache": "var/cache/apt/",
            "Dir::Cache::archives": "archives/",
            "Dir::Log": "var/log/apt",
            "APT::Sandbox::User": "root",
        }
        apt_config = path / "apt.conf"
        apt_config.write_text("".join(f'{key} "{value}";\n' for key, value in config.items()))
        return cls(path, config, apt_config)

    def update(self) -> None:
        """apt-get update against the root's sources (a file: repository)."""
        subprocess.run(
            ["apt-get", "update", "--error-on=any"],
            check=True,
            capture_output=True,
            env={**os.environ, "LC_ALL": "C", "APT_CONFIG": str(self.apt_config)},
        )
