#!/bin/bash
# Runs INSIDE the debootstrapped chroot (tests/vm/image.py mounts /proc,
# /sys, /dev around it). Installs the kernel, OpenZFS 2.3 from
# bookworm-backports (built by dkms for the GUEST kernel), python3-apt,
# pyzfs and the tools the tests use (systemd-boot for the UEFI boot chain,
# unattended-upgrades for the apt hook), and the offline venv.
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
  python3 python3-apt python3-venv grub-pc procps iproute2 less zstd \
  rsync dosfstools cpio systemd-boot unattended-upgrades
KVER=$(ls /lib/modules | sort -V | tail -n1)
echo "$KVER" >/etc/bootenv-vm-kernel
stamp "kernel is $KVER"

stamp "OpenZFS from bookworm-backports"
"${APT[@]}" install -t bookworm-backports \
  zfs-dkms zfsutils-linux zfs-initramfs python3-pyzfs

stamp "dkms for the guest kernel $KVER"
if ! find "/lib/modules/$KVER" -name 'zfs.ko*' | grep -q .; then
  dkms autoinstall -k "$KVER"
fi
find "/lib/modules/$KVER" -name 'zfs.ko*' | grep -q . || { echo "no zfs.ko for $KVER" >&2; exit 1; }
depmod -a "$KVER"
dpkg-query -W -f='${Version}\n' zfsutils-linux >/etc/bootenv-vm-zfs
update-initramfs -u -k "$KVER"

stamp "venv"
/usr/bin/python3 -m venv --system-site-packages /opt/bootenv-venv
/opt/bootenv-venv/bin/pip install -q --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.lock
/opt/bootenv-venv/bin/python -c 'import libzfs_core, apt_pkg, typer, tabulate, pytest, hypothesis'


stamp "clean"
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/wheels /var/cache/debconf/*-old
stamp "done"
