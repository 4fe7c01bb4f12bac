"""`bootenv diff` and `bootenv show` end to end on a fake pool, with dpkg
status trees under BOOTENV_FAKE_DPKG (the fake mounts nothing)."""

from __future__ import annotations

import json

import pytest

from bootenv.errors import EXIT_NOT_FOUND, EXIT_USAGE
from bootenv.zfs.fake import FakeZfs

from ..apt.test_manifest import STATUS, write_status


@pytest.fixture
def trees(env, tmp_path):
    root = tmp_path / "trees"
    write_status(root)
    env["BOOTENV_FAKE_DPKG"] = str(root)
    return root


UPGRADED = STATUS.replace("Version: 2.10-3", "Version: 2.12-1").replace("Version: 2.36-9", "Version: 2.36-8") + """
Package: newpkg
Status: install ok installed
Architecture: all
Version: 1.0
"""


def test_diff_packages_like_rpm_ostree(run, trees):
    assert run("create", "ck").exit_code == 0
    write_status(trees, UPGRADED)  # the running BE moves on
    result = run("diff", "ck")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Packages from ck to debian:",
        "Upgraded:",
        "  hello 2.10-3 -> 2.12-1",
        "Downgraded:",
        "  libc6 2.36-9 -> 2.36-8",
        "Added:",
        "  newpkg 1.0",
        "1 upgraded, 1 downgraded, 1 added, 0 removed",
    ]
    reverse = run("diff", "debian", "ck", "-H")
    assert reverse.stdout.splitlines() == [
        "package\tupgraded\tlibc6:amd64\t2.36-8\t2.36-9",
        "package\tdowngraded\thello:amd64\t2.12-1\t2.10-3",
        "package\tremoved\tnewpkg:all\t1.0\t-",
    ]


def test_diff_files_through_zfs_diff_when_lineage_is_shared(run, trees, state):
    assert run("create", "ck").exit_code == 0
    with FakeZfs.session(state) as z:
        z.write("rpool/ROOT/debian", 4096)
    result = run("diff", "ck", "--files", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    [top] = data["datasets"]
    assert top["method"] == "zfs diff rpool/ROOT/debian@ck rpool/ROOT/debian"
    assert [(f["change"], f["path"].startswith("/data-")) for f in top["files"]] == [("added", True)]
    assert data["summary"]["files"] == {"added": 1, "removed": 0, "modified": 0, "renamed": 0}
    assert data["summary"]["written"] == 4096
    # the other way round: the same file, removed
    back = json.loads(run("diff", "debian", "ck", "--files", "--json").stdout)
    assert [f["change"] for f in back["datasets"][0]["files"]] == ["removed"]
    assert "reversed" in back["datasets"][0]["method"]


def test_diff_files_by_tree_when_both_moved_on(run, trees, state, tmp_path):
    assert run("create", "ck").exit_code == 0
    with FakeZfs.session(state) as z:
        z.write("rpool/ROOT/debian", 4096)
        z.write("rpool/ROOT/ck", 4096)
    # both trees as the fake "mounts" them: / and /run/bootenv/ck
    (trees / "etc").mkdir()
    (trees / "etc/changed").write_text("new")
    ck = trees / "run/bootenv/ck"
    write_status(ck)
    (ck / "etc").mkdir()
    (ck / "etc/changed").write_text("old!")
    (ck / "etc/gone").write_text("x")
    result = run("diff", "ck", "@running", "--files", "-H")
    assert result.exit_code == 0, result.output
    lines = [l for l in result.stdout.splitlines() if l.startswith("file\t") and "/run" not in l]
    assert "file\tmodified\t/etc/changed\t-" in lines
    assert "file\tremoved\t/etc/gone\t-" in lines


def test_diff_by_tree_tells_a_moved_file_by_its_bytes(run, trees, state):
    """Two trees with no lineage: a file removed here and added there with
    the same size, mode, owner, mtime and bytes is one rename; a look-alike
    with other bytes, or two candidates for one file, is not."""
    import os

    assert run("create", "ck").exit_code == 0
    with FakeZfs.session(state) as z:
        z.write("rpool/ROOT/debian", 4096)
        z.write("rpool/ROOT/ck", 4096)
    ck = trees / "run/bootenv/ck"
    write_status(ck)
    for tree in (trees, ck):
        (tree / "etc").mkdir()

    def put(path, text, mtime=1_700_000_000):
        path.write_text(text)
        os.utime(path, ns=(mtime * 10**9, mtime * 10**9))

    put(ck / "etc/old-name", "the same bytes")
    put(trees / "etc/new-name", "the same bytes")  # moved
    put(ck / "etc/was", "abc")
    put(trees / "etc/is", "abd")  # same size and times, other bytes: not a rename
    put(ck / "etc/twin", "zz", 1_600_000_000)
    put(trees / "etc/twin-1", "zz", 1_600_000_000)
    put(trees / "etc/twin-2", "zz", 1_600_000_000)  # two candidates: neither is called a rename
    result = run("diff", "ck", "@running", "--files", "-H")
    assert result.exit_code == 0, result.output
    lines = {l for l in result.stdout.splitlines() if l.startswith("file\t") and "/run" not in l}
    assert "file\trenamed\t/etc/old-name\t/etc/new-name" in lines
    assert not any("old-name" in l or "new-name" in l for l in lines - {"file\trenamed\t/etc/old-name\t/etc/new-name"})
    assert {"file\tremoved\t/etc/was\t-", "file\tadded\t/etc/is\t-"} <= lines
    assert {"file\tremoved\t/etc/twin\t-", "file\tadded\t/etc/twin-1\t-", "file\tadded\t/etc/twin-2\t-"} <= lines
    human = run("diff", "ck", "@running", "--files").stdout
    assert "  R /etc/old-name -> /etc/new-name" in human


def test_diff_bad_input_is_one_line(run, trees):
    result = run("diff", "nosuch")
    assert result.exit_code == EXIT_NOT_FOUND and result.stderr.startswith("bootenv: ") and len(result.stderr.splitlines()) == 1
    assert run("diff", "debian").exit_code == EXIT_USAGE  # itself
    assert run("diff", "debian", "-H", "--json").exit_code == EXIT_USAGE


def test_diff_without_manifests_says_so(run, env):
    env.pop("BOOTENV_FAKE_DPKG", None)
    assert run("create", "ck").exit_code == 0
    result = run("diff", "ck")
    assert result.exit_code == 0, result.output
    assert "packages: not compared" in result.stdout


def test_show_properties_lineage_datasets_and_packages(run, trees):
    assert run("create", "ck", "-t", "before").exit_code == 0
    write_status(trees, UPGRADED)
    assert run("create", "ck2", "--from", "debian").exit_code == 0
    result = run("show", "ck2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "org.bootenv:origin-be=debian" in out and "org.bootenv:manifest=v1 parts=1 packages=4" in out
    assert "from rpool/ROOT/debian@ck2 (BE debian)" in out
    assert "Packages against its origin debian: no change" in out
    data = json.loads(run("show", "ck", "--json").stdout)
    assert data["lineage"] == [{"snapshot": "rpool/ROOT/debian@ck", "be": "debian"}]
    # from the origin as it is now (upgraded since) to ck
    assert [(c["change"], c["name"]) for c in data["packages_against_origin"]["packages"]] == [
        ("upgraded", "libc6:amd64"), ("downgraded", "hello:amd64"), ("removed", "newpkg:all")]
    assert data["datasets"][0]["dataset"] == "rpool/ROOT/ck"
    assert run("show", "nosuch").exit_code == EXIT_NOT_FOUND
