"""What `bootenv destroy -n` and `bootenv prune -n` say a plan frees (the
engine's plan.reclaim: one space query for the whole set) equals the
pool's measured change of `used` when the plan runs, within a few hundred
KiB of real ZFS metadata: one BE, a BE with its dependants, a prune of
five (issue 12). Each test prints its row (set, preview, measured) so the
table lands in the log (`pytest -s`, or the guest's console)."""

from __future__ import annotations

from bootenv.engine import Engine
from bootenv.retention import Policy

from .helpers import MiB, approx

SLACK = 512 * 1024  # real ZFS's metadata and rounding


def _engine(zenv) -> Engine:
    """A BE root under the test's root, with a running BE `base` (not
    mounted: the engine is told which one runs)."""
    root = f"{zenv.root}/ROOT"
    zenv.create(root)
    zenv.create(f"{root}/base")
    return Engine(zenv.zfs, be_root=root, running=f"{root}/base")


def _used(zenv) -> int:
    zenv.sync()
    return int(zenv.zfs.get_props(zenv.root, ["used"])["used"])


def _run_and_measure(zenv, plan, label: str) -> tuple[int, int]:
    """(preview total, measured fall of `used`) for `plan`, printed as a row."""
    assert plan.reclaim is not None, plan.notes
    per, total = plan.reclaim
    assert total is not None and all(v is not None for v in per.values()), per
    before = _used(zenv)
    plan.execute()
    measured = before - _used(zenv)
    print(f"\nRECLAIM {zenv.kind:<5} {label:<36} preview {total / MiB:8.2f} MiB  measured {measured / MiB:8.2f} MiB  "
          f"diff {(total - measured) / 1024:+8.0f} KiB")
    return total, measured


def _checkpoint(engine, zenv, name: str, mib: int, **kw) -> None:
    """Write `mib` MiB to the running BE, then take checkpoint `name` of it
    and write 1 MiB into the checkpoint: its origin snapshot and the
    checkpoint each hold data of their own once the running BE lets go."""
    zenv.write(f"{engine.be_root}/base", mib * MiB)
    engine.plan_create(name, **kw).execute()
    zenv.write(f"{engine.be_root}/{name}", 1 * MiB)


def test_destroy_n_of_one_be_is_what_goes(zenv):
    engine = _engine(zenv)
    _checkpoint(engine, zenv, "a", 4)
    zenv.delete_all(f"{engine.be_root}/base")  # now base@a alone holds the 4 MiB
    plan = engine.plan_destroy("a", reclaim=True, strict=True)
    preview, measured = _run_and_measure(zenv, plan, "destroy a (its origin snapshot goes)")
    assert approx(preview, 5 * MiB)
    assert abs(preview - measured) <= SLACK, (preview, measured)


def test_destroy_n_of_a_be_with_its_dependants_is_what_goes(zenv):
    engine = _engine(zenv)
    _checkpoint(engine, zenv, "a", 3)
    for name in ("b", "c"):  # cloned from a: a cannot go alone without promoting one
        zenv.write(f"{engine.be_root}/a", 1 * MiB)
        engine.plan_create(name, source="a").execute()
        zenv.write(f"{engine.be_root}/{name}", 1 * MiB)
    zenv.delete_all(f"{engine.be_root}/base")
    zenv.delete_all(f"{engine.be_root}/a")
    plan = engine.plan_destroy(["a", "b", "c"], reclaim=True, strict=True)
    preview, measured = _run_and_measure(zenv, plan, "destroy a, b, c (b, c cloned from a)")
    assert approx(preview, 3 * MiB + 1 * MiB + 2 * MiB + 2 * MiB)  # base@a, a's own, a@b + a@c, b and c
    assert abs(preview - measured) <= SLACK, (preview, measured)


def test_prune_n_of_five_is_what_goes(zenv):
    engine = _engine(zenv)
    for i in range(7):
        _checkpoint(engine, zenv, f"h{i}", 1, kind="hook")
    zenv.delete_all(f"{engine.be_root}/base")
    plan = engine.plan_prune(Policy(keep_auto=2, keep_min=2), strict=True)
    assert plan.result.destroyed == ["h4", "h3", "h2", "h1", "h0"]
    preview, measured = _run_and_measure(zenv, plan, "prune of 5 (keep_auto 2)")
    # each its own 1 MiB; what their origin snapshots hold, h5 and h6 (clones of
    # later snapshots of base) still reference: it stays
    assert approx(preview, 5 * MiB)
    assert abs(preview - measured) <= SLACK, (preview, measured)
