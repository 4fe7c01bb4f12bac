# bootenv — build, test and demo targets.
#   make demo        bootenv on a real ZFS pool inside a QEMU guest
#   make test        everything: unit, contract (fake ZFS), and the VM suite
#   make test-fast   the fast layer only (unit + contract on the fake)
#   make test-fast-debian  the fast layer on Debian's python3-typer/-click/-tabulate
#   make test-wheel  the wheel in a fresh venv, dependencies as pip resolves them
#   make deb         dist/bootenv_VERSION_all.deb (then: apt install ./dist/bootenv_*.deb)
# Everything installs what it needs (apt-get included) on a fresh Debian.

SHELL := /bin/bash
# python3-apt and python3-pyzfs are built for Debian's interpreter only.
SYSPY := /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
export BOOTENV_VM_CACHE ?= /var/cache/bootenv-vm

HOST_PACKAGES := python3-venv python3-apt dpkg-dev grub-common
VM_HOST_PACKAGES := qemu-system-x86 qemu-utils debootstrap e2fsprogs zstd dpkg-dev ovmf

.PHONY: all test test-fast-layers debian-venv test-fast test-fast-debian test-wheel test-deb deb deb-deps completion test-vm test-vm-main test-vm-other test-boots demo vm-image vm-rootdisk vm-rootdisk-other deps vm-deps venv bench clean

all: test

# On a fresh machine the guest image (~11 min, mostly native: debootstrap,
# dkms) and the root disk (~6 min, one qemu run) are built while the fast
# layers run beside them on the other core; everything apt installs on the
# host comes first, so no two apt-gets meet, and the .deb both sides use.
# A warm machine builds nothing.
test: deps vm-deps deb-deps debian-venv venv deb
	$(MAKE) --no-print-directory -j2 test-fast-layers vm-rootdisk vm-rootdisk-other
	$(MAKE) --no-print-directory test-vm

# The fast layers, one after another (the other make job builds the images).
test-fast-layers:
	$(MAKE) --no-print-directory test-fast test-fast-debian test-wheel test-deb

test-fast: venv
	$(VPY) -m pytest tests/unit tests/contract

# ---- packaging (issue 11) ----------------------------------------------
# The fast layer again, on Debian bookworm's own typer 0.7 / click 8.1 /
# tabulate 0.8.9 (the .deb's dependencies): a venv of Debian's packages
# only, bootenv itself the one thing pip installs (--no-deps).
DEBIAN_PY_PACKAGES := python3-typer python3-click python3-tabulate python3-pytest python3-hypothesis python3-pytest-mock
DVENV := .venv-debian
DVPY := $(DVENV)/bin/python

test-fast-debian: debian-venv
	$(DVPY) tests/package/debian_versions.py
	$(DVPY) -m pytest -p no:cacheprovider tests/unit tests/contract

debian-venv: $(DVENV)/.stamp

$(DVENV)/.stamp: pyproject.toml | deps
	@bash tools/apt-ensure.sh $(DEBIAN_PY_PACKAGES)
	test -x $(DVPY) || $(SYSPY) -m venv --system-site-packages $(DVENV)
	$(DVPY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# The wheel, installed into a fresh venv (no system site packages) with the
# dependencies pip resolves from the index today, then a fake-pool scenario
# through its `bootenv` command (tests/package/test_wheel.py).
test-wheel: venv
	$(VPY) -m pytest -p no:cacheprovider tests/package/test_wheel.py

# The Debian package: built from a copy of the tree in build/deb/ (so
# dpkg-buildpackage's ../ output stays inside it), moved to dist/. Debian's
# python3 builds it, whatever python3 comes first on PATH.
DEB_BUILD_PACKAGES := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
	python3-typer python3-click bash-completion lintian
DEB_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEBPATH := /usr/sbin:/usr/bin:/sbin:/bin

deb: dist/bootenv_$(DEB_VERSION)_all.deb

dist/bootenv_$(DEB_VERSION)_all.deb: $(wildcard $(shell git ls-files 2>/dev/null)) | deb-deps
	rm -rf build/deb && mkdir -p build/deb/bootenv dist
	tar -c --exclude-vcs --exclude=./.venv* --exclude=./build --exclude=./dist --exclude=./tests/vm/.out --exclude=./.pybuild \
		--exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis . \
		| tar -x -C build/deb/bootenv
	cd build/deb/bootenv && PATH=$(DEBPATH) dpkg-buildpackage -us -uc -b
	mv build/deb/bootenv_$(DEB_VERSION)_all.deb dist/
	@echo "built dist/bootenv_$(DEB_VERSION)_all.deb"

deb-deps: deps
	@bash tools/apt-ensure.sh $(DEB_BUILD_PACKAGES)

# The .deb: lintian (no errors), its contents, and the extracted program on
# the fake pool with Debian's python3 (tests/package/test_deb.py).
test-deb: deb venv
	PATH=$(DEBPATH) lintian --fail-on error dist/bootenv_$(DEB_VERSION)_all.deb
	$(VPY) -m pytest -p no:cacheprovider tests/package/test_deb.py

# The bash completion, as debian/rules makes it.
completion: venv
	$(VPY) tools/gen_completion.py -o build/completion/bootenv
# ---- end of packaging ----------------------------------------------------

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
	$(VPY) bench/cli_real.py --fake --create

clean:
	rm -rf $(VENV) $(DVENV) build dist *.egg-info .pytest_cache

# ---- VM targets (tests/vm/) --------------------------------------------
# The guest image is cached in $(BOOTENV_VM_CACHE)/<recipe hash>/ and built
# (~15 min, once) only when tests/vm/image* or requirements.lock change.
# Debug in the guest: .venv/bin/python tests/vm/harness.py run --pool -- CMD...
vm-image: venv vm-deps
	$(VPY) tests/vm/image.py build

# The root-on-ZFS disk that boots through GRUB (tests/vm/rootdisk.py; ~7 min
# once, cached beside the image): for real reboots and tests/vm/guest_rootdisk.
vm-rootdisk: vm-image deb
	$(VPY) tests/vm/rootdisk.py build

# The whole VM suite on the default Debian release (tests/vm/suites.py) and,
# at the same time, a set on the other one (its guest runs one qemu at a
# time: three at once in all); each make job's output comes out whole.
VM_OTHER = BOOTENV_VM_SUITE=$$($(VPY) tests/vm/suites.py other)

test-vm: vm-rootdisk vm-rootdisk-other deb
	$(MAKE) --no-print-directory -j2 --output-sync=target test-vm-main test-vm-other

test-vm-main: vm-rootdisk deb
	$(VPY) -m pytest tests/vm

test-vm-other: vm-rootdisk-other deb
	$(VM_OTHER) BOOTENV_VM_PARALLEL=1 BOOTENV_VM_TESTS="$$($(VPY) tests/vm/suites.py other-tests)" \
		BOOTENV_VM_CHAINS="$$($(VPY) tests/vm/suites.py other-chains)" $(VPY) -m pytest tests/vm

vm-rootdisk-other: venv vm-deps deb
	$(VM_OTHER) $(VPY) tests/vm/image.py build
	$(VM_OTHER) $(VPY) tests/vm/rootdisk.py build

# Real reboots through GRUB (BIOS) and systemd-boot (UEFI, OVMF)
# (tests/vm/test_boots.py): activate, trial boots, fallback, the apt hook,
# dist-upgrade rollback. Live: .venv/bin/python tests/vm/boots.py run [CHAIN]
test-boots: vm-rootdisk deb
	$(VPY) -m pytest tests/vm/test_boots.py

demo: vm-rootdisk deb
	$(VPY) tests/vm/demo.py
# ---- end of VM targets -------------------------------------------------
