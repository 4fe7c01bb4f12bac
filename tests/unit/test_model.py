"""BE names: what ZFS would reject is refused up front, with the reason."""

import pytest

from bootenv.errors import EXIT_USAGE, InvalidBeName
from bootenv.model import MAX_NAME_LEN, validate_be_name


@pytest.mark.parametrize(
    "name",
    ["debian", "before-upgrade", "be_2026.11.22", "a", "x:y", "A" * MAX_NAME_LEN],
)
def test_valid_names_pass(name):
    assert validate_be_name(name) == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("", "empty"),
        ("A" * (MAX_NAME_LEN + 1), "longer than"),
        ("-rf", "start with '-'"),
        ("a/b", "'/'"),
        ("a@b", "'@'"),
        ("a%b", "'%'"),
        ("a b", "spaces"),
        ("a\tb", "spaces"),
        (".hidden", "invalid"),
        ("é", "invalid"),
        ("a*b", "invalid"),
    ],
)
def test_invalid_names_say_why(name, reason):
    with pytest.raises(InvalidBeName, match=reason) as err:
        validate_be_name(name)
    assert err.value.exit_code == EXIT_USAGE


def test_make_title_cleans_and_clips_generated_text():
    from bootenv.model import MAX_TITLE_LEN, make_title, validate_title

    assert make_title("apt install\tfoo\n") == "apt install foo "
    long = make_title("apt install " + "pkg " * 1000)
    assert len(long) == MAX_TITLE_LEN and long.endswith("...")
    assert validate_title(long) == long
