"""Checkpointed apt: the orchestration (upgrader.py: plan, checkpoint, run
apt in place or in a sandbox clone, roll back), the chroot a sandbox runs
in (chroot.py, chroot_procs.py) and the apt hook (hook.py).

Nothing is imported here: the hook runs before every dpkg call and imports
hook.py alone."""
