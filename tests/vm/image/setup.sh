#!/bin/bash
# Runs INSIDE the debootstrapped chroot (tests/vm/image.py mounts /proc,
# /sys, /dev around it). Installs the kernel, OpenZFS 2.3 from
# bookworm-backports (built by dkms for the GUEST kernel), python3-apt,
# pyzfs, Debian's pytest and hypothesis, the tools the tests use
# (systemd-boot for the UEFI boot chain, unattended-upgrades for the apt
# hook, openssh-server and ansible-core for contrib/ansible's playbook), and a local `file:` apt repository with bootenv's own dependencies
# (python3-typer, -click, -tabulate: downloaded here, NOT installed), the
# guest's only apt source: the harness installs bootenv from the run's .deb
# with `apt-get install ./bootenv_*.deb` (tests/vm/guest-run.sh), and apt
# pulls them from there, offline, as it would from a mirror.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true
export LC_ALL=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
APT=(apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
     -o APT::Install-Recommends=false)
stamp() { echo "=== bootenv-image: $* ($(date +%T))"; }

debconf-set-selections <<'SEL'
zfs-dkms zfs-dkms/note-incompatible-licenses note
zfs-dkms zfs-dkms/stop-build-for-32bit-kernel boolean true
zfs-dkms zfs-dkms/stop-build-for-unknown-kernel boolean true
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
SEL

stamp "apt update"
apt-get -q update

stamp "kernel + base"
"${APT[@]}" install linux-image-amd64 linux-headers-amd64 \
  systemd udev kmod util-linux e2fsprogs gdisk dpkg-dev \
  python3 python3-apt python3-pytest python3-hypothesis grub-pc procps iproute2 less zstd \
  rsync dosfstools cpio systemd-boot unattended-upgrades \
  openssh-server ansible-core
KVER=$(ls /lib/modules | sort -V | tail -n1)
echo "$KVER" >/etc/bootenv-vm-kernel
stamp "kernel is $KVER"

# bookworm's own OpenZFS is 2.1: take backports' 2.3; trixie's contrib has 2.3.
SUITE=${SUITE:-bookworm}
ZFS_FROM=()
[ "$SUITE" = bookworm ] && ZFS_FROM=(-t bookworm-backports)
stamp "OpenZFS (${ZFS_FROM[*]:-$SUITE contrib})"
"${APT[@]}" install "${ZFS_FROM[@]}" \
  zfs-dkms zfsutils-linux zfs-initramfs python3-pyzfs

stamp "dkms for the guest kernel $KVER"
if ! find "/lib/modules/$KVER" -name 'zfs.ko*' | grep -q .; then
  dkms autoinstall -k "$KVER"
fi
find "/lib/modules/$KVER" -name 'zfs.ko*' | grep -q . || { echo "no zfs.ko for $KVER" >&2; exit 1; }
depmod -a "$KVER"
dpkg-query -W -f='${Version}\n' zfsutils-linux >/etc/bootenv-vm-zfs
update-initramfs -u -k "$KVER"

stamp "Python: no venv, Debian's own"
/usr/bin/python3 -c 'import libzfs_core, apt_pkg, pytest, hypothesis'

stamp "local apt repository of bootenv's dependencies"
LOCAL=/opt/bootenv-vm-repo
mkdir -p "$LOCAL"
apt-get clean
# What `apt install ./bootenv_*.deb` needs beyond the image (Depends of
# debian/control; python3-apt, zfsutils-linux and python3-pyzfs are in the
# image already), with their Recommends as a user's apt would take them.
"${APT[@]}" -o APT::Install-Recommends=true --download-only install \
  python3-typer python3-click python3-tabulate
mv /var/cache/apt/archives/*.deb "$LOCAL/"
(cd "$LOCAL" && dpkg-scanpackages --multiversion . >Packages 2>/dev/null)
ls -l "$LOCAL"
dpkg -l python3-typer python3-click python3-tabulate 2>&1 | tail -n +6 || true

stamp "clean"
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old
# The guest is offline: its one apt source is the local repository.
rm -f /etc/apt/sources.list.d/debian.sources
echo "deb [trusted=yes] file:$LOCAL ./" >/etc/apt/sources.list.d/bootenv-vm-local.list
apt-get -q update
apt-get -s install python3-typer python3-click python3-tabulate
apt-cache policy python3-typer
stamp "done"
