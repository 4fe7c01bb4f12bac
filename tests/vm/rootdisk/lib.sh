# Shared by build.sh (one pool, ext4 /boot/grub, ESP) and build-bpool.sh
# (the OpenZFS guide's bpool + encrypted rpool): sourced, with R the new
# root mounted and T0 the start time.

stamp() { echo "=== rootdisk: $* (+$(( $(date +%s) - T0 )) s)"; }

# The runner's root into $R, trimmed: docs, man pages, locales, compilers
# and kernel sources (dkms has built zfs.ko already), caches.
copy_runner_root() {
  rsync -aHAX --numeric-ids \
    --exclude=/proc/ --exclude=/sys/ --exclude=/dev/ --exclude=/run/ --exclude=/tmp/ --exclude=/mnt/ \
    --exclude=/usr/share/doc/ --exclude=/usr/share/man/ --exclude=/usr/share/locale/ --exclude=/usr/share/info/ \
    --exclude=/usr/src/ --exclude=/usr/lib/gcc/ --exclude=/var/cache/ --exclude=/var/log/ \
    --exclude=/lost+found/ \
    / "$R"/
  mkdir -p "$R"/proc "$R"/sys "$R"/dev "$R"/run "$R"/tmp "$R"/mnt "$R"/var/cache/apt/archives/partial "$R"/var/log "$R"/boot/grub
  chmod 1777 "$R"/tmp
  stamp "copied: $(du -sxh "$R" | cut -f1)"
}

# Hostname, init, root's password, bootenv from its package (checked), the
# boot tests' unit, nothing periodic, GRUB's defaults (serial console).
configure_system() {
  echo bootenv-root >"$R"/etc/hostname
  printf '127.0.0.1 localhost\n127.0.1.1 bootenv-root\n' >"$R"/etc/hosts
  rm -f "$R"/usr/sbin/policy-rc.d "$R"/usr/local/sbin/bootenv-vm-init
  # bookworm's `systemd` without systemd-sysv: no /sbin/init nor reboot.
  ln -sf /lib/systemd/systemd "$R"/sbin/init
  for c in reboot poweroff halt shutdown; do ln -sf /bin/systemctl "$R"/sbin/$c; done
  echo 'root:bootenv' | chroot "$R" chpasswd
  # bootenv from its package (guest-run.sh installed the run's .deb in the
  # runner with apt), nothing of it from the tree.
  chroot "$R" dpkg-query -W bootenv python3-typer python3-click python3-tabulate
  test -x "$R"/usr/bin/bootenv && test ! -e "$R"/usr/local/bin/bootenv
  test -f "$R"/etc/bootenv/bootenv.conf && test -x "$R"/etc/grub.d/42_bootenv && test -d "$R"/etc/bootenv/health.d
  chroot "$R" systemctl is-enabled bootenv-boot.service bootenv-confirm.service
  # The boot tests' own unit (not part of bootenv).
  install -m755 "$HERE/bootenv-vmtest" "$R"/usr/local/sbin/bootenv-vmtest
  install -m644 "$HERE/bootenv-vmtest.service" "$R"/etc/systemd/system/bootenv-vmtest.service
  chroot "$R" systemctl enable bootenv-vmtest.service serial-getty@ttyS0.service
  # Nothing periodic in a test VM.
  chroot "$R" systemctl disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer e2scrub_reap.service getty@tty1.service unattended-upgrades.service || true
  cat >"$R"/etc/default/grub <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_TIMEOUT_STYLE=menu
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200 panic=5 net.ifnames=0 systemd.show_status=1"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
GRUB
}

# The running kernel's initramfs on the new root has ZFS in it.
check_initramfs() {
  KVER=$(cat "$R"/etc/bootenv-vm-kernel)
  chroot "$R" lsinitramfs /boot/initrd.img-"$KVER" >/tmp/initramfs.list
  grep -E '/zfs\.ko|sbin/zpool$' /tmp/initramfs.list || { echo "no zfs in the initramfs" >&2; exit 1; }
}

# The OpenZFS guide's import of the boot pool by name (the initramfs imports
# the root pool only; no zpool.cache names device paths of the build run).
install_bpool_import() {
  cat >"$R"/etc/systemd/system/zfs-import-bpool.service <<'UNIT'
[Unit]
DefaultDependencies=no
Before=zfs-import-scan.service
Before=zfs-import-cache.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/zpool import -N -o cachefile=none bpool
# Work-around to preserve zpool cache:
ExecStartPre=-/bin/mv /etc/zfs/zpool.cache /etc/zfs/preboot_zpool.cache
ExecStartPost=-/bin/mv /etc/zfs/preboot_zpool.cache /etc/zfs/zpool.cache

[Install]
WantedBy=zfs-import.target
UNIT
  chroot "$R" systemctl enable zfs-import-bpool.service
}

# The guides' root= in GRUB_CMDLINE_LINUX: grub-probe cannot name a root pool
# made without GRUB's feature set (their rpool; encrypted or not), so 10_linux
# would write root=ZFS=/ROOT/NAME. 42_bootenv's entries drop it.
grub_root_on_cmdline() {
  sed -i "s|^GRUB_CMDLINE_LINUX=\"|GRUB_CMDLINE_LINUX=\"root=ZFS=$1 |" "$R"/etc/default/grub
  grep -q "^GRUB_CMDLINE_LINUX=\"root=ZFS=$1 " "$R"/etc/default/grub
}

# The boot pool layouts' disk: p1 BIOS boot, p2 the boot pool (1G), p3 the root pool.
partition_boot_pool_disk() {
  stamp "partitions on $DISK"
  sgdisk -Z "$DISK" >/dev/null
  sgdisk -a1 -n1:24K:+1000K -t1:EF02 -n2:0:+1G -t2:BE00 -n3:0:0 -t3:BF00 "$DISK"
  udevadm settle || true
  partx -u "$DISK" 2>/dev/null || true
  for i in $(seq 50); do [ -b "${DISK}2" ] && [ -b "${DISK}3" ] && break; sleep 0.2; done
}

# The guides' boot pool on p2: GRUB's feature set, mounted under $R/boot.
create_bpool() {
  zpool create -f -o ashift=12 -o autotrim=on -o compatibility=grub2 -o cachefile=none \
    -O devices=off -O acltype=posixacl -O xattr=sa -O compression=lz4 -O normalization=formD \
    -O relatime=on -O canmount=off -O mountpoint=/boot -R "$R" bpool "${DISK}2"
}

# GRUB on the disk with its directory in the boot half of BE $1, as the
# guides' grub-install leaves it; the menu's entries load from /BOOT/$1@/.
install_grub_in_boot_half() {
  chroot "$R" grub-probe /boot
  chroot "$R" grub-install --target=i386-pc "$DISK"
  chroot "$R" update-grub
  grep -n "root=ZFS=rpool/ROOT/$1" "$R"/boot/grub/grub.cfg
  grep -q "/BOOT/$1@/vmlinuz" "$R"/boot/grub/grub.cfg
}

export_pools() {
  stamp "export"
  sync
  umount -R "$R"/proc "$R"/sys "$R"/dev 2>/dev/null || umount -lR "$R"/dev || true
  zpool export bpool
  zpool export rpool
  stamp "done"
}
