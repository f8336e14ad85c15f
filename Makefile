# nettrail: `sudo make capture` sets up what a capture needs and runs one;
# `sudo make test` sets up the tests too and runs the whole suite (what .ci/run does):
# on this kernel (`make test-host`), then the kernel tests under Debian's 6.1
# and 6.12 in qemu (`make test-kernels`, docs/kernels.md).
CLANG ?= clang
# llvm-strip drops DWARF and keeps BTF; without it the objects are only larger
STRIP ?= $(shell command -v llvm-strip || echo true)
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BUILD := build/bpf
OUT ?= build/bpf-objects
PROBES := $(patsubst bpf/%.bpf.c,%,$(wildcard bpf/*.bpf.c))
# the probes that pass over open files, built twice: the second object for
# kernels whose verifier leaves those sockets untrusted (bpf/common.bpf.h)
PASSING := bandwidth sessions listeners udp
OBJECTS := $(PROBES:%=$(OUT)/%.bpf.o) $(PASSING:%=$(OUT)/%.untrusted.bpf.o)
PYTHON ?= python3
VENV := .venv
# What a capture needs (building the wheel: clang, bpftool; running it: libbpf),
# and what only the tests use (a browser, namespaces and firewalls, other
# libcs and resolvers, a terminal multiplexer, man, a UDP sender)
CAPTURE_PACKAGES := clang llvm libbpf-dev bpftool
TEST_PACKAGES := iproute2 util-linux chromium nftables musl-tools golang-go bind9-dnsutils \
	tmux man-db iperf3
# Debian packages not yet installed, installed
install_missing = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) $$missing; \
	fi

.PHONY: all bpf wheel setup capture test test-host bench clean
all: bpf
bpf: $(OBJECTS)

$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

BPF_CFLAGS = -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf

$(OUT)/%.untrusted.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) $(BUILD)/vmlinux.h
	@mkdir -p $(OUT)
	$(CLANG) $(BPF_CFLAGS) -DFILE_SOCKETS_UNTRUSTED -c $< -o $@.tmp
	$(STRIP) -g $@.tmp
	mv $@.tmp $@

$(OUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) $(BUILD)/vmlinux.h
	@mkdir -p $(OUT)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(STRIP) -g $@.tmp
	mv $@.tmp $@

# The capture's Debian packages (only if missing), a virtualenv, and nettrail
# installed into it the way it ships: `python -m build` makes the sdist, then
# the wheel from that sdist (so the sdist is proven complete), and the wheel
# is installed with its dependencies.
wheel:
	@mkdir -p build
	@$(call install_missing,$(CAPTURE_PACKAGES))
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check build
	rm -rf dist && $(VENV)/bin/python -m build -o dist . >build/python-build.log 2>&1 \
		|| { tail -30 build/python-build.log; exit 1; }
	$(VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps dist/*.whl
	$(VENV)/bin/pip install -q --disable-pip-version-check dist/*.whl

# The wheel, and what the tests use: their Debian packages and Python extras
setup: wheel
	@$(call install_missing,$(TEST_PACKAGES))
	$(VENV)/bin/pip install -q --disable-pip-version-check "$$(ls dist/*.whl)[test]"

capture: wheel
	$(VENV)/bin/nettrail check
	$(VENV)/bin/nettrail capture 1 5

# The suite imports the installed nettrail: `pytest` (not `python -m pytest`)
# keeps this source tree off sys.path.
test: test-host
	$(MAKE) -o setup test-kernels

test-host: setup
	$(VENV)/bin/pytest -q tests

bench: setup
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 libbpf-tools time >/dev/null
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf build dist *.egg-info

# The kernel tests (`-m kernel`, less the host_only ones: docs/kernels.md) inside
# Debian's stock kernels, each booted in
# qemu over a read-only view of this machine, as root with CI=true; fails with
# the first failing kernel's status (docs/kernels.md, vm/run.py). The kernels
# run at once, each into build/vm-KERNEL.log (printed at the end): a TCG VM
# keeps about one core busy, and one after the other they took over an hour.
VM_PACKAGES := qemu-system-x86 busybox-static kmod
KERNELS ?= 6.1 6.12
VM_TIMEOUT_S ?= 3600
.PHONY: test-kernels
test-kernels: setup
	@$(call install_missing,$(VM_PACKAGES),--no-install-recommends)
	@mkdir -p build; pids=""; \
	for k in $(KERNELS); do \
		$(PYTHON) vm/run.py --kernel $$k --timeout $(VM_TIMEOUT_S) --cwd $(CURDIR) --env CI=true \
			--env PYTHONUNBUFFERED=1 -- $(VENV)/bin/pytest -q -rf -m "kernel and not host_only" tests \
			>build/vm-$$k.log 2>&1 & pids="$$pids $$!"; \
	done; rc=0; \
	for p in $$pids; do wait $$p; s=$$?; [ $$rc -ne 0 ] || rc=$$s; done; \
	for k in $(KERNELS); do echo "== kernel tests in $$k (build/vm-$$k.log)"; cat build/vm-$$k.log; done; \
	exit $$rc
