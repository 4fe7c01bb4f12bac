"""Plans run in order, and a failing step undoes what came before it."""

import pytest

from bootenv.errors import OperationFailed, Refused
from bootenv.plan import Plan
from bootenv.zfs.base import DatasetBusy


def test_steps_run_in_order_with_progress():
    done, progress = [], []
    plan = Plan("do")
    plan.add("one", lambda: done.append(1))
    plan.add("two", lambda: done.append(2), destroys=True)
    plan.execute(lambda n, total, text: progress.append((n, total, text)))
    assert done == [1, 2]
    assert progress == [(1, 2, "one"), (2, 2, "two")]
    assert plan.destroys == ["two"]


def test_failure_undoes_completed_steps_newest_first_and_names_the_step():
    undone = []
    plan = Plan("do")
    plan.add("a", lambda: None, undo=lambda: undone.append("a"))
    plan.add("b", lambda: None, undo=lambda: undone.append("b"))
    plan.add("c", lambda: (_ for _ in ()).throw(DatasetBusy("busy", "p/x")))
    plan.add("d", lambda: undone.append("never"))
    with pytest.raises(OperationFailed, match=r"^c: busy \(undone"):
        plan.execute()
    assert undone == ["b", "a"]


def test_bootenv_errors_pass_through_after_undo():
    undone = []
    plan = Plan("do")
    plan.add("a", lambda: None, undo=lambda: undone.append("a"))
    plan.add("b", lambda: (_ for _ in ()).throw(Refused("no")))
    with pytest.raises(Refused):
        plan.execute()
    assert undone == ["a"]
