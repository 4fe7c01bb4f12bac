#!/bin/bash
# Runs in the RUNNER guest (tests/vm/rootdisk.py build, through harness.py):
# turns the blank disk $1 into a bootable root-on-ZFS Debian that is a copy
# of the runner guest itself, bootable two ways: SeaBIOS -> GRUB, and UEFI
# (OVMF) -> systemd-boot. The recipe is issue 5's measured one, plus an ext4
# /boot/grub (p2) so GRUB can write its environment (the bootenv one-shot
# really expires; see bootenv/boot/grub.py), plus an ESP (p4) for systemd-boot.
#
#   p1 BIOS boot (core.img)   p2 ext4 /boot/grub   p4 ESP (vfat, /boot/efi)   p3 pool rpool
#   rpool/ROOT (canmount=off) / rpool/ROOT/debian (canmount=noauto, mountpoint=/), bootfs
#
# bootenv.conf names no bootloader: bootenv detects it (systemd-boot when the
# firmware's LoaderInfo says so, else GRUB), so one disk serves both chains.
#
# bootenv is the Debian package: guest-run.sh installed the run's .deb in the
# runner with apt (its dependencies from the image's local repository) before
# this script, and the copy below takes it along, dpkg database included: the
# disk boots with /usr/bin/bootenv, the package's units enabled by its
# postinst and its conffiles (/etc/bootenv/bootenv.conf, 42_bootenv, the apt
# hook) as shipped. The boot chains reinstall the run's .deb on their first
# boot (tests/vm/boot/step.py refresh_bootenv).
set -euxo pipefail
DISK=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s)
. "$HERE/lib.sh"

stamp "partitions on $DISK"
sgdisk -Z "$DISK" >/dev/null
sgdisk -a1 -n1:24K:+1000K -t1:EF02 -n2:0:+128M -t2:8300 -n4:0:+512M -t4:EF00 -n3:0:0 -t3:BF00 "$DISK"
udevadm settle || true
partx -u "$DISK" 2>/dev/null || true
for i in $(seq 50); do [ -b "${DISK}3" ] && [ -b "${DISK}4" ] && break; sleep 0.2; done
mkfs.ext4 -q -F -L bootgrub "${DISK}2"
mkfs.vfat -F 32 -n ESP "${DISK}4"

stamp "pool"
zpool create -f -o ashift=12 -o compatibility=grub2 -o cachefile=none \
  -O mountpoint=none -O canmount=off -O compression=lz4 \
  -O acltype=posixacl -O xattr=sa -R /mnt/new rpool "${DISK}3"
zfs create -o canmount=off -o mountpoint=none rpool/ROOT
zfs create -o canmount=noauto -o mountpoint=/ rpool/ROOT/debian
zfs mount rpool/ROOT/debian
zpool set bootfs=rpool/ROOT/debian rpool

stamp "copy the runner's root"
R=/mnt/new
copy_runner_root
mkdir -p $R/boot/efi

mount "${DISK}2" $R/boot/grub
mount "${DISK}4" $R/boot/efi
for d in proc sys dev; do mount --rbind /$d $R/$d; done

stamp "configure"
UUID=$(blkid -s UUID -o value "${DISK}2")
cat >$R/etc/fstab <<FSTAB
# / is rpool/ROOT/<BE> (root=ZFS=, zfs-initramfs)
UUID=$UUID /boot/grub ext4 defaults 0 2
UUID=$(blkid -s UUID -o value "${DISK}4") /boot/efi vfat umask=0077 0 1
FSTAB
configure_system

stamp "initramfs"
check_initramfs

stamp "grub"
chroot $R grub-probe /
chroot $R grub-install --target=i386-pc "$DISK"
chroot $R update-grub
grep -n "root=ZFS=rpool/ROOT/debian" $R/boot/grub/grub.cfg
grep -q "root=ZFS=rpool/ROOT/debian" $R/boot/grub/grub.cfg

stamp "systemd-boot"
# The loader on the ESP (no NVRAM entries: OVMF boots EFI/BOOT/BOOTX64.EFI),
# and the entry of the disk's own BE written by bootenv's driver itself.
echo "console=ttyS0,115200 panic=5 net.ifnames=0 systemd.show_status=1" >$R/etc/kernel/cmdline
SYSTEMD_RELAX_ESP_CHECKS=1 chroot $R bootctl install --esp-path=/boot/efi --no-variables
printf 'default bootenv-debian.conf\ntimeout 1\neditor no\nconsole-mode keep\n' >$R/boot/efi/loader/loader.conf
chroot $R /usr/bin/python3 - "$KVER" <<'PY'
import sys
from bootenv.boot.systemd_boot import SystemdBootBootloader
from bootenv.model import BootEnv
be = BootEnv(name="debian", dataset="rpool/ROOT/debian", active=True, running=False, createtxg=0, created=None,
             used=0, referenced=0, origin=None, origin_be=None, title="Debian", kind=None, command=None,
             state=None, mounted=False, children=())
SystemdBootBootloader(esp="/boot/efi").install(be, "/boot", sys.argv[1])
PY
find $R/boot/efi -type f | sort
cat $R/boot/efi/loader/entries/bootenv-debian.conf
test -f $R/boot/efi/EFI/BOOT/BOOTX64.EFI

stamp "export"
sync
umount -R $R/proc $R/sys $R/dev 2>/dev/null || umount -lR $R/dev || true
umount $R/boot/grub $R/boot/efi
zpool export rpool
stamp "done"
