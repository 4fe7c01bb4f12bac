"""apt/model.py: requests, plans as apt shows them, the packages
property within ZFS's limit, reboot rules, the space refusal."""

from __future__ import annotations

import pytest

from bootenv.apt.fake import fake_plan
from bootenv.apt.model import (
    MAX_PACKAGES_PROP,
    AptPlan,
    AptRequest,
    Change,
    NotEnoughSpace,
    check_space,
    human,
    reboot_reasons,
)
from bootenv.errors import EXIT_REFUSED, EXIT_USAGE, UsageError


def test_requests():
    assert AptRequest("full-upgrade").apt_args() == ["dist-upgrade"]
    assert AptRequest("install", ("vim", "curl")).apt_args() == ["install", "vim", "curl"]
    assert AptRequest("purge", ("x",)).text == "apt-get purge x"


@pytest.mark.parametrize(
    "action, packages",
    [("frobnicate", ()), ("upgrade", ("vim",)), ("install", ()), ("remove", ("-y",)), ("install", ("a b",))],
)
def test_bad_requests_are_usage_errors(action, packages):
    with pytest.raises(UsageError) as err:
        AptRequest(action, packages)
    assert err.value.exit_code == EXIT_USAGE


def test_describe_like_apt():
    plan = AptPlan(
        AptRequest("dist-upgrade"),
        changes=(
            Change("bash", "upgrade", "5.2.15-2", "5.2.15-2+b7"),
            Change("newdep", "install", None, "1.0"),
            Change("olddep", "remove", "0.9", None),
        ),
        download_bytes=1_234_567,
        space_bytes=-2_000,
        kept_back=("held",),
        reboot_reasons=("libc6 changes",),
    )
    assert plan.describe() == [
        "The following NEW packages will be installed:",
        "  newdep",
        "The following packages will be upgraded:",
        "  bash (5.2.15-2 => 5.2.15-2+b7)",
        "The following packages will be REMOVED:",
        "  olddep",
        "The following packages have been kept back:",
        "  held",
        "1 upgraded, 1 newly installed, 1 to remove, 1 not upgraded.",
        "Need to get 1.2 MB of archives.",
        "After this operation, 2 kB disk space will be freed.",
        "A reboot will be needed: libc6 changes.",
    ]


def test_long_package_lists_wrap():
    plan = fake_plan(AptRequest("upgrade"), upgrade=[f"package-{n:03}" for n in range(40)])
    lines = plan.describe()[1:-4]
    assert len(lines) > 5 and all(len(line) <= 80 for line in lines)


def test_human():
    assert [human(n) for n in (0, 999, 1000, 812_000, 23_400_000, 5 * 10**9)] == [
        "0 B", "999 B", "1 kB", "812 kB", "23.4 MB", "5.0 GB",
    ]


def test_packages_property_compact_and_bounded():
    small = fake_plan(AptRequest("dist-upgrade"), upgrade=("bash",), install=("vim",), remove=("nano",))
    assert small.packages_property() == "3: ^bash=2 -nano +vim=2"
    names = [f"libsomething-long-name{n:05}" for n in range(300)]
    mid = fake_plan(AptRequest("dist-upgrade"), upgrade=names)
    prop = mid.packages_property()
    assert prop.startswith("300: ^libsomething-long-name00000 ") and "=" not in prop  # names only
    big = fake_plan(AptRequest("dist-upgrade"), upgrade=[f"lib-{n:06}-with-a-long-name" for n in range(3000)])
    prop = big.packages_property()
    assert len(prop.encode()) <= MAX_PACKAGES_PROP < 8192
    assert prop.startswith("3000: ^lib-000000-with-a-long-name")
    shown = prop.count("^")
    assert prop.endswith(f" ...+{3000 - shown}")


def test_reboot_rules(tmp_path):
    changes = [Change("vim", "upgrade", "1", "2"), Change("linux-image-6.1.0-30-amd64", "install", None, "1")]
    assert reboot_reasons(changes, str(tmp_path)) == ("linux-image-6.1.0-30-amd64 changes",)
    assert reboot_reasons([Change("dbus", "remove", "1", None)], str(tmp_path)) == ("dbus is removed",)
    assert reboot_reasons([Change("vim", "upgrade", "1", "2")], str(tmp_path)) == ()
    (tmp_path / "var/run").mkdir(parents=True)
    (tmp_path / "var/run/reboot-required").write_text("")
    assert reboot_reasons([], str(tmp_path)) == ("/var/run/reboot-required says a reboot is already pending",)


def test_needed_space_counts_everything_unpacked():
    plan = AptPlan(AptRequest("upgrade"), (Change("a", "upgrade", "1", "2"),), download_bytes=100, space_bytes=-50, write_bytes=400)
    assert plan.needed_bytes == 500  # the checkpoint keeps the old files: nothing is freed
    check_space(plan, 500, "rpool")
    with pytest.raises(NotEnoughSpace) as err:
        check_space(plan, 499, "rpool")
    assert err.value.exit_code == EXIT_REFUSED
    assert "needs 500 B" in str(err.value) and "has 499 B free" in str(err.value)
