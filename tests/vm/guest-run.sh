#!/bin/bash
# The guest side of tests/vm/harness.py. bootenv-vm-init (PID 1, baked into
# the image) runs this from the share after mounting it at /mnt/host, so it
# can change without rebuilding the image.
#
#   /mnt/host        the run dir (writable): this script, cmd.sh, out/
#   /mnt/host/tree   the project tree (read-only, second 9p share, tag host1)
#   /mnt/host/out    results the host reads back (exit-code, results.xml, ...)
#
# cmd.sh (written by the harness) runs with cwd = the tree, the tree on
# PYTHONPATH and /opt/bootenv-venv/bin first on PATH (so `python3` has
# typer, pytest, apt_pkg and libzfs_core).
set -u
SHARE=/mnt/host
mkdir -p "$SHARE/out"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro host1 "$SHARE/tree"; then
  echo "bootenv-vm: cannot mount the project tree (tag host1)"
  exit 120
fi
export TREE="$SHARE/tree" OUT="$SHARE/out" BOOTENV_VM=1
export PYTHONPATH="$TREE" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis
export PATH="/opt/bootenv-venv/bin:$PATH"
cd "$TREE" || exit 120
echo "bootenv-vm: kernel $(uname -r), $(zfs version 2>/dev/null | head -n1)"
echo "BOOTENV-VM-CMD-START"
bash "$SHARE/cmd.sh"
rc=$?
echo "BOOTENV-VM-CMD-END rc=$rc"
exit "$rc"
