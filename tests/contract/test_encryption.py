"""Native encryption, as far as bootenv needs it (issue 14): a clone is
under its origin's encryption root (no new key), children inherit it, a
listing says which root each filesystem's key belongs to, and promote
moves the root to the promoted clone when the origin was it (OpenZFS's
dsl_dataset_promote_crypt_sync). The key is a file: no prompt."""

from __future__ import annotations

import pytest

from bootenv.zfs.base import ZfsError

from .helpers import by_name


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "key"
    path.write_text("bootenv-contract-passphrase\n")
    return f"file://{path}"


def _encrypted(zenv, name, key):
    zenv.create(name, {"encryption": "on", "keyformat": "passphrase", "keylocation": key, "mountpoint": "none"})


def test_clones_and_children_stay_under_the_encryption_root(zenv, key):
    enc, plain = f"{zenv.root}/enc", f"{zenv.root}/plain"
    _encrypted(zenv, enc, key)
    zenv.create(plain, {"mountpoint": "none"})
    zenv.create(f"{enc}/ROOT", {"canmount": "off"})
    zenv.create(f"{enc}/ROOT/debian", {"canmount": "noauto"})
    zenv.create(f"{enc}/ROOT/debian/var", {"canmount": "noauto"})
    zenv.zfs.snapshot([f"{enc}/ROOT/debian@ck", f"{enc}/ROOT/debian/var@ck"])
    zenv.zfs.clone(f"{enc}/ROOT/debian@ck", f"{enc}/ROOT/ck", {"canmount": "noauto"})
    zenv.zfs.clone(f"{enc}/ROOT/debian/var@ck", f"{enc}/ROOT/ck/var", {"canmount": "noauto"})
    rows = by_name(zenv.zfs.list(zenv.root))
    for name in (enc, f"{enc}/ROOT", f"{enc}/ROOT/debian", f"{enc}/ROOT/debian/var", f"{enc}/ROOT/ck", f"{enc}/ROOT/ck/var"):
        assert rows[name].props.get("encryptionroot") == enc, name
    assert "encryptionroot" not in rows[plain].props and "encryptionroot" not in rows[zenv.root].props
    got = zenv.zfs.get_props(f"{enc}/ROOT/ck", ["encryption", "encryptionroot", "keystatus"])
    assert got == {"encryption": "aes-256-gcm", "encryptionroot": enc, "keystatus": "available"}
    assert zenv.zfs.get_props(plain, ["encryption"]) == {"encryption": "off"}


def test_promote_moves_the_encryption_root_to_the_promoted_clone(zenv, key):
    root = f"{zenv.root}/ROOT"
    zenv.create(root, {"mountpoint": "none"})
    be = f"{root}/debian"
    _encrypted(zenv, be, key)  # the BE itself is the encryption root
    zenv.zfs.snapshot([f"{be}@ck"])
    zenv.zfs.clone(f"{be}@ck", f"{root}/ck", {"canmount": "noauto"})
    assert by_name(zenv.zfs.list(root))[f"{root}/ck"].props.get("encryptionroot") == be
    zenv.zfs.promote(f"{root}/ck")
    rows = by_name(zenv.zfs.list(root))
    assert rows[f"{root}/ck"].props.get("encryptionroot") == f"{root}/ck"
    assert rows[be].props.get("encryptionroot") == f"{root}/ck"
    assert "encryptionroot" not in rows[root].props


def test_encryption_is_set_at_creation_only(zenv, key):
    enc = f"{zenv.root}/enc"
    _encrypted(zenv, enc, key)
    with pytest.raises(ZfsError):
        zenv.zfs.set_props(enc, {"encryption": "off"})
    assert zenv.zfs.get_props(enc, ["encryption"]) == {"encryption": "aes-256-gcm"}


def test_promote_twice_moves_the_root_only_when_the_origin_was_it(zenv, key):
    """OpenZFS's own zfs_promote_encryptionroot: a clone of a clone of the
    root, promoted, leaves the root where it was (its origin was not the
    root); promoted again (now its origin is the root), it becomes the root
    of them all, children too."""
    root = f"{zenv.root}/fs1"
    _encrypted(zenv, root, key)
    zenv.zfs.snapshot([f"{root}@s1"])
    c1, c2 = f"{zenv.root}/clone1", f"{zenv.root}/clone2"
    zenv.zfs.clone(f"{root}@s1", c1, {"canmount": "noauto"})
    zenv.zfs.snapshot([f"{c1}@s2"])
    zenv.zfs.clone(f"{c1}@s2", c2, {"canmount": "noauto"})
    for parent in (root, c1, c2):
        zenv.create(f"{parent}/child", {"canmount": "noauto"})
    everyone = [root, c1, c2, f"{root}/child", f"{c1}/child", f"{c2}/child"]

    def roots():
        rows = by_name(zenv.zfs.list(zenv.root))
        return {name: rows[name].props.get("encryptionroot") for name in everyone}

    assert set(roots().values()) == {root}
    zenv.zfs.promote(c2)
    assert set(roots().values()) == {root}
    zenv.zfs.promote(c2)
    assert set(roots().values()) == {c2}


def test_what_may_move_under_and_out_of_an_encryption_root(zenv, key):
    """Measured on 2.3.2: an unencrypted clone (or filesystem) may live
    under an encrypted parent and stays unencrypted; an encrypted child
    cannot leave its encryption root, and the refusal changes nothing."""
    plain, enc = f"{zenv.root}/plain", f"{zenv.root}/enc"
    zenv.create(plain, {"mountpoint": "none"})
    _encrypted(zenv, enc, key)
    zenv.create(f"{enc}/child", {"canmount": "noauto"})
    zenv.zfs.snapshot([f"{plain}@s"])
    zenv.zfs.clone(f"{plain}@s", f"{enc}/x", {"canmount": "noauto"})
    assert zenv.zfs.get_props(f"{enc}/x", ["encryption", "encryptionroot"]) == {"encryption": "off"}
    before = sorted(by_name(zenv.zfs.list(zenv.root)))
    with pytest.raises(ZfsError):
        zenv.zfs.rename(f"{enc}/child", f"{zenv.root}/child")
    assert sorted(by_name(zenv.zfs.list(zenv.root))) == before
    assert by_name(zenv.zfs.list(zenv.root))[f"{enc}/child"].props.get("encryptionroot") == enc
