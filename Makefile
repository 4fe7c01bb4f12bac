# bootenv — build, test and demo targets.
#   make demo        bootenv on a real ZFS pool inside a QEMU guest
#   make test        everything: unit, contract (fake ZFS), and the VM suite
#   make test-fast   the fast layer only (unit + contract on the fake)
# Everything installs what it needs (apt-get included) on a fresh Debian.

SHELL := /bin/bash
# python3-apt and python3-pyzfs are built for Debian's interpreter only.
SYSPY := /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
export BOOTENV_VM_CACHE ?= /var/cache/bootenv-vm

HOST_PACKAGES := python3-venv python3-apt dpkg-dev grub-common
VM_HOST_PACKAGES := qemu-system-x86 qemu-utils debootstrap e2fsprogs zstd dpkg-dev ovmf

.PHONY: all test test-fast test-vm test-boots demo vm-image vm-rootdisk deps vm-deps venv bench clean

all: test

test: test-fast test-vm

test-fast: venv
	$(VPY) -m pytest tests/unit tests/contract

deps:
	@bash tools/apt-ensure.sh $(HOST_PACKAGES)

vm-deps: deps
	@bash tools/apt-ensure.sh $(VM_HOST_PACKAGES)

venv: $(VENV)/.stamp

$(VENV)/.stamp: pyproject.toml requirements.lock | deps
	test -x $(VPY) || $(SYSPY) -m venv --system-site-packages $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

bench: venv
	$(VPY) bench/list_scale.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# ---- VM targets (tests/vm/) --------------------------------------------
# The guest image is cached in $(BOOTENV_VM_CACHE)/<recipe hash>/ and built
# (~15 min, once) only when tests/vm/image* or requirements.lock change.
# Debug in the guest: .venv/bin/python tests/vm/harness.py run --pool -- CMD...
vm-image: venv vm-deps
	$(VPY) tests/vm/image.py build

# The root-on-ZFS disk that boots through GRUB (tests/vm/rootdisk.py; ~7 min
# once, cached beside the image): for real reboots and tests/vm/guest_rootdisk.
vm-rootdisk: vm-image
	$(VPY) tests/vm/rootdisk.py build

test-vm: vm-rootdisk
	$(VPY) -m pytest tests/vm

# Real reboots through GRUB (BIOS) and systemd-boot (UEFI, OVMF)
# (tests/vm/test_boots.py): activate, trial boots, fallback, the apt hook,
# dist-upgrade rollback. Live: .venv/bin/python tests/vm/boots.py run [CHAIN]
test-boots: vm-rootdisk
	$(VPY) -m pytest tests/vm/test_boots.py

demo: vm-rootdisk
	$(VPY) tests/vm/demo.py
# ---- end of VM targets -------------------------------------------------
