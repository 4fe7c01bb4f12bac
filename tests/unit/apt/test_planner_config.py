"""apt's configuration is read before a plan even when something set an
APT:: key first (apt_pkg.TagFile does: `import apt` then skips reading
/etc/apt). A fresh Debian python per case: apt_pkg.config is process-global."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CASE = """
import apt_pkg
with apt_pkg.TagFile({status!r}) as tags:
    next(iter(tags), None)  # what a package manifest does first
from bootenv.apt.planner import apt_config
with apt_config({{}}):
    import apt  # noqa: F401  (as plan() does: it must not leave the config unread)
    print(apt_pkg.config.find_dir("Dir::State::lists"))
    print(apt_pkg.config.find_file("Dir::Etc::sourcelist"))
"""


def test_config_is_read_after_a_tagfile(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: x\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n")
    proc = subprocess.run([sys.executable, "-c", CASE.format(status=str(status))], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lists, sourcelist = proc.stdout.split()
    assert lists == "/var/lib/apt/lists/"
    assert sourcelist == "/etc/apt/sources.list"
