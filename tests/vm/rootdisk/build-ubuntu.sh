#!/bin/bash
# Runs in the RUNNER guest (tests/vm/rootdisk.py build ubuntu): turns the
# blank disk $1 into a root-on-ZFS system laid out as Ubuntu's installer
# (zsys) lays it out, booted by SeaBIOS -> GRUB (a Debian inside: the
# layout is what is tested):
#
#   p1 BIOS boot   p2 pool bpool (GRUB's feature set)   p3 pool rpool
#   bpool/BOOT (off) / bpool/BOOT/ubuntu_ab12cd at /boot (canmount=on), GRUB's
#     directory inside it
#   rpool/ROOT/ubuntu_ab12cd at / (canmount=on, com.ubuntu.zsys:bootfs=yes)
#     with its children: usr and var (canmount=off containers), usr/local,
#     var/lib, var/lib/apt, var/lib/dpkg, var/log, var/spool, srv (on)
#   rpool/USERDATA (off) / rpool/USERDATA/root_xy12 at /root, tied to the root
#     by com.ubuntu.zsys:bootfs-datasets; a zsys state (autozsys snapshots)
#   bpool imported by name (zfs-import-bpool.service, as the OpenZFS guide's),
#     the rest mounted by zfs-mount.service (`zfs mount -a`: no generator cache)
set -euxo pipefail
DISK=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s)
. "$HERE/lib.sh"
R=/mnt/new
BE=ubuntu_ab12cd
ROOTDS=rpool/ROOT/$BE

partition_boot_pool_disk

stamp "pools"
create_bpool
zpool create -f -o ashift=12 -o autotrim=on -o cachefile=none \
  -O acltype=posixacl -O xattr=sa -O dnodesize=auto -O compression=lz4 -O normalization=formD \
  -O relatime=on -O canmount=off -O mountpoint=/ -R $R rpool "${DISK}3"
zfs create -o canmount=off -o mountpoint=none rpool/ROOT
zfs create -o canmount=off -o mountpoint=none bpool/BOOT
zfs create -o mountpoint=/ -o com.ubuntu.zsys:bootfs=yes -o com.ubuntu.zsys:last-used=$(date +%s) $ROOTDS
zfs create -o mountpoint=/boot bpool/BOOT/$BE
zfs create -o canmount=off $ROOTDS/usr
zfs create -o canmount=off $ROOTDS/var
for d in usr/local var/lib var/lib/apt var/lib/dpkg var/log var/spool srv; do zfs create $ROOTDS/$d; done
zfs create -o canmount=off -o mountpoint=/ rpool/USERDATA
zfs create -o com.ubuntu.zsys:bootfs-datasets=$ROOTDS -o canmount=on -o mountpoint=/root rpool/USERDATA/root_xy12
zpool set bootfs=$ROOTDS rpool
zfs list -r -o name,canmount,mountpoint rpool bpool

stamp "copy the runner's root"
copy_runner_root
chmod 700 $R/root
echo "USERDATA $(date +%s)" >$R/root/userdata-marker
for d in proc sys dev; do mount --rbind /$d $R/$d; done

stamp "configure"
cat >$R/etc/fstab <<'FSTAB'
# / is rpool/ROOT/<BE> (root=ZFS=, zfs-initramfs) with its children; /boot its
# bpool/BOOT/<BE>; USERDATA and the rest mounted by zfs-mount.service
FSTAB
configure_system
grub_root_on_cmdline $ROOTDS
install_bpool_import

stamp "initramfs"
check_initramfs

stamp "grub"
install_grub_in_boot_half $BE

stamp "a zsys state"
zfs snapshot -r $ROOTDS@autozsys_q1w2e3
zfs snapshot bpool/BOOT/$BE@autozsys_q1w2e3
zfs snapshot rpool/USERDATA/root_xy12@autozsys_q1w2e3

export_pools
