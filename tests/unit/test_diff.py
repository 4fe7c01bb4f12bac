"""diff.py's own rules, apart from the CLI (tests/unit/cli/test_diff_cli.py)."""

from bootenv.diff import FileChange, fold_replaced


def test_a_path_removed_and_added_is_one_modified_file():
    """What real zfs diff printed for `apt upgrade hello` (measured in the
    guest): dpkg renames NAME.dpkg-new over NAME, a new object, so the
    old object is '-' and the new one '+' under the same path."""
    changes = [
        FileChange("modified", "/usr/share/hello", kind="/"),
        FileChange("removed", "/var/lib/dpkg/status"),
        FileChange("added", "/usr/share/hello/new-file"),
        FileChange("added", "/var/lib/dpkg/status"),
        FileChange("removed", "/usr/share/hello/gone"),
        FileChange("removed", "/etc/x", kind="@"),  # a symlink replaced by a file: two changes
        FileChange("added", "/etc/x", kind="F"),
        FileChange("renamed", "/etc/a", "/etc/b"),
    ]
    assert fold_replaced(changes) == [
        FileChange("modified", "/usr/share/hello", kind="/"),
        FileChange("modified", "/var/lib/dpkg/status"),
        FileChange("added", "/usr/share/hello/new-file"),
        FileChange("removed", "/usr/share/hello/gone"),
        FileChange("removed", "/etc/x", kind="@"),
        FileChange("added", "/etc/x", kind="F"),
        FileChange("renamed", "/etc/a", "/etc/b"),
    ]
    assert fold_replaced([]) == []
