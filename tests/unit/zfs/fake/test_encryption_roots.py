"""The fake's encryption roots are fixed at creation and moved by promote
only (as OpenZFS records them), never worked out by walking the lineage."""

from bootenv.zfs.fake import FakeZfs

ENC = {"encryption": "on", "keyformat": "passphrase", "keylocation": "prompt"}


def test_a_clone_under_its_own_origin_promoted_lists_and_keeps_its_root():
    """A clone living below its origin, promoted: the origin is then a
    clone of its own child. A walk of origins and parents goes round in
    circles there (it hung `make test`); the recorded root does not."""
    z = FakeZfs(strict=True)
    z.create_pool("p", ENC)
    z.create("p/a")
    z.snapshot(["p/a@s"])
    z.clone("p/a@s", "p/a/b")
    z.promote("p/a/b")
    rows = {d.name: d.props.get("encryptionroot") for d in z.list("p")}
    assert rows == {"p": "p", "p/a": "p", "p/a/b": "p"}
    plain = FakeZfs(strict=True)
    plain.create_pool("q")
    plain.create("q/a")
    plain.snapshot(["q/a@s"])
    plain.clone("q/a@s", "q/a/b")
    plain.promote("q/a/b")
    assert all("encryptionroot" not in d.props for d in plain.list("q"))


def test_the_root_survives_a_save_and_a_load(tmp_path):
    z = FakeZfs(strict=True)
    z.create_pool("p")
    z.create("p/enc", ENC)
    z.create("p/enc/x")
    again = FakeZfs.from_dict(z.to_dict())
    assert again.get_props("p/enc/x", ["encryptionroot"]) == {"encryptionroot": "p/enc"}
