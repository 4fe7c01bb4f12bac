#!/bin/bash
# The guest side of tests/vm/harness.py. bootenv-vm-init (PID 1, baked into
# the image) runs this from the share after mounting it at /mnt/host, so it
# can change without rebuilding the image.
#
#   /mnt/host        the run dir (writable): this script, cmd.sh, debs/, out/
#   /mnt/host/tree   the project tree (read-only, second 9p share, tag host1)
#   /mnt/host/debs   the run's bootenv_VERSION_all.deb (harness.py: `make deb`)
#   /mnt/host/out    results the host reads back (exit-code, results.xml, ...)
#
# First bootenv is installed from the .deb the way a user installs it
# (`apt-get install ./bootenv_*.deb`): apt pulls python3-typer, -click and
# -tabulate from the image's only apt source, the local file: repository
# /opt/bootenv-vm-repo (tests/vm/image/setup.sh). Then cmd.sh (written by the
# harness) runs with cwd = $TREE = /run/bootenv-vm/tree, a view of the tree
# (one symlink per top-level entry) WITHOUT bootenv/, also on PYTHONPATH:
# the tests and tools come from the tree, `bootenv` is /usr/bin/bootenv and
# `import bootenv` the installed package in /usr/lib/python3/dist-packages.
set -u
SHARE=/mnt/host
mkdir -p "$SHARE/out"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro host1 "$SHARE/tree"; then
  echo "bootenv-vm: cannot mount the project tree (tag host1)"
  exit 120
fi
VIEW=/run/bootenv-vm/tree
mkdir -p "$VIEW"
for entry in "$SHARE"/tree/* "$SHARE"/tree/.[!.]*; do
  [ -e "$entry" ] || continue
  case ${entry##*/} in
    bootenv|*.egg-info|build|dist|.git|.venv*|.pytest_cache|.hypothesis) ;;
    *) ln -s "$entry" "$VIEW/" ;;
  esac
done

debs=("$SHARE"/debs/bootenv_*_all.deb)
if [ ! -f "${debs[0]}" ] || [ ${#debs[@]} -ne 1 ]; then
  echo "bootenv-vm: no single bootenv .deb in $SHARE/debs (${debs[*]})"
  exit 122
fi
# From a local copy: apt's _apt user cannot read the 9p share.
mkdir -p /run/bootenv-vm/debs && cp "${debs[0]}" /run/bootenv-vm/debs/
deb=/run/bootenv-vm/debs/${debs[0]##*/}
t0=$(date +%s%N)
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >"$SHARE/out/apt-install.log" 2>&1; then
  cat "$SHARE/out/apt-install.log"
  echo "bootenv-vm: apt-get install $deb FAILED"
  exit 122
fi
# Which .deb this system holds: a root disk built in this run carries the
# same file, and the boot chains then skip their reinstall (step.py).
mkdir -p /var/lib/bootenv-vm && sha256sum <"$deb" | cut -d' ' -f1 >/var/lib/bootenv-vm/installed-deb.sha256
echo "bootenv-vm: installed $(dpkg-query -W -f='${Package} ${Version}' bootenv) from ${deb##*/}" \
  "in $(( ($(date +%s%N) - t0) / 1000000 )) ms; set up:" \
  "$(grep -E '^(Setting up|Unpacking) ' "$SHARE/out/apt-install.log" | sed -n 's/^Setting up \([^ ]*\) .*/\1/p' | tr '\n' ' ')"

export TREE="$VIEW" OUT="$SHARE/out" BOOTENV_VM=1
export PYTHONPATH="$TREE" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis
cd "$TREE" || exit 120
echo "bootenv-vm: kernel $(uname -r), $(zfs version 2>/dev/null | head -n1)"
echo "BOOTENV-VM-CMD-START"
bash "$SHARE/cmd.sh"
rc=$?
echo "BOOTENV-VM-CMD-END rc=$rc"
exit "$rc"
