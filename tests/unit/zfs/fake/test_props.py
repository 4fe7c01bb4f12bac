"""Property-based tests of the fake ZFS: random sequences of operations
(create, encrypted or not, snapshot, clone, promote, destroy, rename, holds,
writes) on a strict fake,
which checks after every step that a failed call changed nothing and that
check_invariants() holds (structure, createtxg order, space sums)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bootenv.zfs.base import NotAClone, ZfsError
from bootenv.zfs.fake import FakeZfs

COMPONENTS = st.sampled_from(["a", "b", "c", "d"])
SNAPNAMES = st.sampled_from(["s1", "s2", "s3"])
SIZES = st.integers(min_value=1, max_value=5).map(lambda n: n * 1000)


def _summary(z: FakeZfs) -> list[tuple]:
    rows = z.list("p", snapshots=True)
    keep = ("origin", "used", "referenced", "usedbysnapshots", "usedbydataset", "usedbychildren", "encryptionroot")
    return sorted((d.name, tuple(d.props.get(k) for k in keep)) for d in rows)


class FakeZfsMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.z = FakeZfs(clock=lambda: 1, strict=True)
        self.z.create_pool("p")
        self.z.create("p/a")

    def _fs(self) -> list[str]:
        return sorted(self.z._fs)

    def _snaps(self) -> list[str]:
        return sorted(self.z._snaps)

    def _try(self, fn, *args) -> None:
        try:
            fn(*args)
        except ZfsError:
            pass  # strict mode already checked that nothing changed

    @rule(data=st.data(), comp=COMPONENTS, encrypt=st.booleans())
    def create(self, data, comp, encrypt):
        parent = data.draw(st.sampled_from(self._fs()))
        props = {"encryption": "on", "keyformat": "passphrase", "keylocation": "prompt"} if encrypt else {}
        self._try(self.z.create, f"{parent}/{comp}", props)

    @rule(data=st.data(), size=SIZES)
    def write(self, data, size):
        self._try(self.z.write, data.draw(st.sampled_from(self._fs())), size)

    @rule(data=st.data(), size=SIZES)
    def delete(self, data, size):
        self._try(self.z.delete, data.draw(st.sampled_from(self._fs())), size)

    @rule(data=st.data(), snap=SNAPNAMES)
    def snapshot(self, data, snap):
        fss = data.draw(st.lists(st.sampled_from(self._fs()), min_size=1, max_size=3))
        self._try(self.z.snapshot, [f"{f}@{snap}" for f in fss])

    @rule(data=st.data(), comp=COMPONENTS)
    def clone(self, data, comp):
        snaps = self._snaps()
        if snaps:
            parent = data.draw(st.sampled_from(self._fs()))
            self._try(self.z.clone, data.draw(st.sampled_from(snaps)), f"{parent}/{comp}")

    @rule(data=st.data())
    def promote(self, data):
        self._try(self.z.promote, data.draw(st.sampled_from(self._fs())))

    @rule(data=st.data())
    def promote_and_back(self, data):
        """Promoting a clone, then its old origin, restores the shape and
        every space figure."""
        clones = [f for f in self._fs() if self.z._fs[f].origin is not None]
        if not clones:
            return
        c = data.draw(st.sampled_from(clones))
        before = _summary(self.z)
        origin_fs = self.z._fs[c].origin.fs.name
        try:
            self.z.promote(c)
        except ZfsError:
            return
        self.z.promote(origin_fs)
        assert _summary(self.z) == before

    @rule(data=st.data())
    def destroy(self, data):
        self._try(self.z.destroy, data.draw(st.sampled_from(self._fs() + self._snaps())))

    @rule(data=st.data(), comp=COMPONENTS)
    def rename_fs(self, data, comp):
        old = data.draw(st.sampled_from(self._fs()))
        parent = data.draw(st.sampled_from(self._fs()))
        self._try(self.z.rename, old, f"{parent}/{comp}")

    @rule(data=st.data(), snap=SNAPNAMES)
    def rename_snap(self, data, snap):
        snaps = self._snaps()
        if snaps:
            old = data.draw(st.sampled_from(snaps))
            self._try(self.z.rename, old, f"{old.split('@')[0]}@{snap}")

    @rule(data=st.data(), tag=st.sampled_from(["t1", "t2"]), release=st.booleans())
    def hold(self, data, tag, release):
        snaps = self._snaps()
        if snaps:
            snap = data.draw(st.sampled_from(snaps))
            self._try(self.z.release if release else self.z.hold, snap, tag)

    @invariant()
    def roundtrips(self):
        if hasattr(self, "z"):
            assert FakeZfs.from_dict(self.z.to_dict()).to_dict() == self.z.to_dict()


FakeZfsMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFakeZfs = FakeZfsMachine.TestCase


def test_promote_of_non_clone_is_not_a_clone():
    z = FakeZfs(strict=True)
    z.create_pool("p")
    with pytest.raises(NotAClone):
        z.promote("p")
