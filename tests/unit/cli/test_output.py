"""Sizes and the three list formats."""

import json

import pytest

from bootenv.model import BootEnv
from bootenv.cli.output import encryption_note, human_size, tab_separated, table, to_json


@pytest.mark.parametrize(
    "n, text",
    [(0, "0B"), (512, "512B"), (1024, "1K"), (1536, "1.5K"), (12 * 1024**2, "12M"),
     (int(1.25 * 1024**3), "1.25G"), (150 * 1024**3, "150G"), (5 * 1024**4, "5T")],
)
def test_human_size_reads_like_zfs(n, text):
    assert human_size(n) == text


def be(name, **kw):
    base = dict(
        name=name, dataset=f"rpool/ROOT/{name}", active=False, running=False, createtxg=1,
        created=1700000000, used=4096, referenced=8192, origin=None, origin_be=None, title="",
        kind=None, command=None, state=None, mounted=False, children=(),
    )
    base.update(kw)
    return BootEnv(**base)


def test_table_marks_active_and_running_columns():
    out = table([be("debian", active=True, running=True), be("ckpt", title="before x")]).splitlines()
    assert out[0].split() == ["A", "C", "#", "NAME", "TITLE", "CREATED", "USED"]
    assert out[1].split()[:4] == ["*", "*", "-", "debian"]
    assert out[2].split()[:2] == ["-", "ckpt"]
    assert "before x" in out[2]


def test_table_shows_unfinished_state_in_title():
    assert "[pending] apt upgrade" in table([be("x", title="apt upgrade", state="pending")])


def test_tab_separated_is_raw_and_headerless():
    line = tab_separated([be("debian", active=True, title="t")])
    assert line.split("\t") == ["A", "-", "debian", "t", "1700000000", "4096", "-"]


def test_json_has_every_field():
    data = json.loads(to_json([be("x", children=("rpool/ROOT/x/var",))]))
    assert data[0]["name"] == "x" and data[0]["used"] == 4096
    assert data[0]["datasets"] == ["rpool/ROOT/x", "rpool/ROOT/x/var"]
    assert data[0]["created_iso"].startswith("2023-11-1")


def test_the_plain_table_is_tabulates():
    """output.plain_table lays printable ASCII out exactly as tabulate's
    "plain" format (0.8.9 on Debian bookworm, and today's), so `list`
    needs no tabulate import; other text still goes through tabulate."""
    import random
    import string

    from tabulate import tabulate

    from bootenv.cli.output import COLUMNS, plain_table

    rng = random.Random(16)
    alphabet = string.ascii_letters + string.digits + "   -[]*.:'\"$\\"
    for _ in range(2000):
        rows = [
            tuple("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in COLUMNS)
            for _ in range(rng.randint(0, 4))
        ]
        assert plain_table(rows, COLUMNS) == tabulate(rows, headers=COLUMNS, tablefmt="plain", disable_numparse=True), rows
    from bootenv.cli.output import human_size, human_time

    title = "\u65e5\u672c\u8a9e \u00e9t\u00e9"  # wide characters: tabulate measures them
    row = ("*", "*", "-", "debian", title, human_time(1700000000), human_size(4096))  # "-": no generation
    want = tabulate([row], headers=COLUMNS, tablefmt="plain", disable_numparse=True)
    assert table([be("debian", active=True, running=True, title=title)]) == want


def test_the_encryption_note_names_the_encrypted_bes_and_their_root():
    plain, enc = be("old"), be("debian", encryption_root="rpool")
    assert encryption_note([plain]) is None
    assert encryption_note([enc]).startswith("encrypted: every BE is encrypted (encryption root rpool); ")
    assert encryption_note([enc, plain]).startswith("encrypted: debian is encrypted (encryption root rpool)")
    two = [enc, be("ck", encryption_root="rpool"), be("other", encryption_root="tank/enc"), plain]
    assert encryption_note(two).startswith("encrypted: debian, ck, other are encrypted (encryption root rpool, tank/enc)")
