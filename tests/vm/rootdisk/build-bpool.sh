#!/bin/bash
# Runs in the RUNNER guest (tests/vm/rootdisk.py build bpool): turns the
# blank disk $1 into a root-on-ZFS Debian laid out as the OpenZFS "Debian
# Root on ZFS" guide lays it out, booted by SeaBIOS -> GRUB:
#
#   p1 BIOS boot (core.img)   p2 pool bpool (GRUB's feature set)   p3 pool rpool (encrypted)
#   bpool/BOOT (off) / bpool/BOOT/debian at /boot (canmount=on), /boot/grub a
#     directory of it, as the guide's grub-install leaves it
#   rpool: native encryption at its top, key from a file the initramfs
#     carries (/etc/zfs/rpool.key: no prompt on the serial console);
#     rpool/ROOT/debian (noauto, /), shared datasets: rpool/home,
#     rpool/var (off) with rpool/var/lib (off) and rpool/var/log
#   bpool imported at boot by the guide's zfs-import-bpool.service; mounts
#     ordered by zfs-mount-generator from /etc/zfs/zfs-list.cache/{bpool,rpool}
#     (written here as zed's list-cacher writes them: no zed runs)
#
# bootenv is the run's .deb (see build.sh). The chain on this disk
# (tests/vm/boot/chain_bpool.py) first runs `bootenv doctor --fix`, which
# gives GRUB's directory a dataset of its own (bpool/grub).
set -euxo pipefail
DISK=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s)
. "$HERE/lib.sh"
R=/mnt/new

partition_boot_pool_disk

stamp "pools"
mkdir -p /etc/zfs
head -c 24 /dev/urandom | base64 >/etc/zfs/rpool.key  # a passphrase in a file
chmod 600 /etc/zfs/rpool.key
create_bpool
zpool create -f -o ashift=12 -o autotrim=on -o cachefile=none \
  -O encryption=on -O keylocation=file:///etc/zfs/rpool.key -O keyformat=passphrase \
  -O acltype=posixacl -O xattr=sa -O dnodesize=auto -O compression=lz4 -O normalization=formD \
  -O relatime=on -O canmount=off -O mountpoint=/ -R $R rpool "${DISK}3"
zfs create -o canmount=off -o mountpoint=none rpool/ROOT
zfs create -o canmount=off -o mountpoint=none bpool/BOOT
zfs create -o canmount=noauto -o mountpoint=/ rpool/ROOT/debian
zfs mount rpool/ROOT/debian
zfs create -o mountpoint=/boot bpool/BOOT/debian
zfs create rpool/home
zfs create -o canmount=off rpool/var
zfs create -o canmount=off rpool/var/lib
zfs create rpool/var/log
zpool set bootfs=rpool/ROOT/debian rpool
echo "USERDATA $(date +%s)" >$R/home/userdata-marker

stamp "copy the runner's root"
copy_runner_root
install -m600 /etc/zfs/rpool.key $R/etc/zfs/rpool.key
for d in proc sys dev; do mount --rbind /$d $R/$d; done

stamp "configure"
cat >$R/etc/fstab <<'FSTAB'
# / is rpool/ROOT/<BE> (root=ZFS=, zfs-initramfs); /boot is its bpool/BOOT/<BE>,
# the rest ZFS datasets mounted by zfs-mount-generator
FSTAB
configure_system
grub_root_on_cmdline rpool/ROOT/debian
install_bpool_import
# zed's list-cacher columns (history_event-zfs-list-cacher.sh), altroot stripped.
PROPS=name,mountpoint,canmount,atime,relatime,devices,exec,readonly,setuid,nbmand,encroot,keylocation
PROPS=$PROPS,org.openzfs.systemd:requires,org.openzfs.systemd:requires-mounts-for,org.openzfs.systemd:before
PROPS=$PROPS,org.openzfs.systemd:after,org.openzfs.systemd:wanted-by,org.openzfs.systemd:required-by
PROPS=$PROPS,org.openzfs.systemd:nofail,org.openzfs.systemd:ignore
mkdir -p $R/etc/zfs/zfs-list.cache
for pool in bpool rpool; do
  zfs list -H -t filesystem -o $PROPS -r $pool | sed -E "s|\t$R/?|\t/|" >$R/etc/zfs/zfs-list.cache/$pool
done
cat $R/etc/zfs/zfs-list.cache/*
# The key in the initramfs, so rpool unlocks without a prompt.
cat >$R/etc/initramfs-tools/hooks/bootenv-vm-zfskey <<'HOOK'
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
mkdir -p "$DESTDIR/etc/zfs"
cp -p /etc/zfs/rpool.key "$DESTDIR/etc/zfs/rpool.key"
HOOK
chmod 755 $R/etc/initramfs-tools/hooks/bootenv-vm-zfskey
echo 'UMASK=0077' >$R/etc/initramfs-tools/conf.d/umask.conf

stamp "initramfs"
# The key goes in as an archive of its own in front of the initramfs (the
# kernel unpacks concatenated archives; what the hook above adds at the next
# update-initramfs): mkinitramfs takes 5+ min under TCG.
KVER=$(cat $R/etc/bootenv-vm-kernel)
# (with its directories: the kernel creates no parent for a file)
(cd $R && printf 'etc\netc/zfs\netc/zfs/rpool.key\n' | cpio -o -H newc --quiet) >/tmp/key.cpio
cat /tmp/key.cpio $R/boot/initrd.img-$KVER >/tmp/initrd.new
install -m600 /tmp/initrd.new $R/boot/initrd.img-$KVER
check_initramfs
grep -q 'etc/zfs/rpool.key' /tmp/initramfs.list

stamp "grub"
install_grub_in_boot_half debian

export_pools
