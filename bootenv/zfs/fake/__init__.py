"""The fake ZFS: an in-memory OpenZFS for tests and for trying bootenv
without ZFS (`BOOTENV_ZFS=fake:STATE.json`).

    core.py        FakeZfs: the ZfsBackend protocol, pools, data, faults
    state.py       the attributes every part of FakeZfs shares, declared once
    ops.py         the wrapper of every public operation (faults, strict mode, autosave)
    names.py       names, properties and their rules
    space.py       blocks, filesystems, snapshots and ZFS's space accounting
    listing.py     `list` rows (the property rows, computed in one place)
    mounts.py      mount, unmount, mounted_at, reboot
    store.py       the JSON state file: save, load (validated), faults included
    invariants.py  check_invariants: a state OpenZFS could be in
    build.py       test pools: root_on_zfs
    shell.py       `python -m bootenv.zfs.fake ...`
"""

from .core import MiB, FakeZfs, open_fake

__all__ = ["FakeZfs", "open_fake", "MiB"]
