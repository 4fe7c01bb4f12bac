#!/bin/bash
# `make demo`, guest side (run by tests/vm/demo.py in the QEMU guest, cwd =
# the project tree): bootenv on a real OpenZFS pool. The guest's own / is
# ext4, so BOOTENV_BE_ROOT / BOOTENV_RUNNING tell bootenv which BE root to
# manage and which BE to treat as the running one.
set -euo pipefail
POOL=betest
DISK=/dev/vdb

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '\033[36m$'; printf ' %q' "$@"; printf '\033[0m\n'; "$@"; }
bootenv() { python3 -m bootenv "$@"; }

say "A pool with one boot environment, as a root-on-ZFS installer makes it:"
run zpool create -f -o ashift=12 -O mountpoint=none -O compression=lz4 "$POOL" "$DISK"
run zfs create -o mountpoint=none "$POOL/ROOT"
run zfs create -o canmount=noauto -o mountpoint=/ "$POOL/ROOT/debian"
mkdir -p /mnt/be
mount -t zfs -o zfsutil "$POOL/ROOT/debian" /mnt/be
cp -a /etc /mnt/be/ 2>/dev/null || true
echo "the root filesystem of BE debian" >/mnt/be/README
umount /mnt/be
run zpool set bootfs="$POOL/ROOT/debian" "$POOL"

export BOOTENV_BE_ROOT="$POOL/ROOT" BOOTENV_RUNNING="$POOL/ROOT/debian"
say "bootenv (running BE: debian; PYTHONPATH is the project tree)"
run bootenv --version || true
run bootenv list
say "Checkpoint before an upgrade:"
run bootenv create before-upgrade -t "before the big upgrade"
run bootenv list
say "Boot it next time:"
run bootenv activate before-upgrade
run bootenv list
run zpool get -H -o value bootfs "$POOL"
say "The running BE cannot be destroyed:"
if run bootenv destroy -y debian; then echo "UNEXPECTED: destroyed the running BE"; exit 1; fi

say "Pretend we rebooted into before-upgrade (activate promoted it, so debian is now its clone); debian can go:"
export BOOTENV_RUNNING="$POOL/ROOT/before-upgrade"
run bootenv destroy -y debian
run bootenv list
run zfs list -r -t all -o name,origin,used,mountpoint "$POOL/ROOT"
say "Demo done."
