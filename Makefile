# Build the CO-RE BPF objects into capture/bpf_objects/ (shipped as package data).
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BUILD := build/bpf
OUT := capture/bpf_objects
PROBES := bandwidth sessions dns
OBJECTS := $(PROBES:%=$(OUT)/%.bpf.o)
PYTHON ?= python3

.PHONY: all bpf test clean
all: bpf
bpf: $(OBJECTS)

$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(OUT)/%.bpf.o: bpf/%.bpf.c bpf/nettrail.h bpf/common.bpf.h $(BUILD)/vmlinux.h
	@mkdir -p $(OUT)
	$(CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
		-I$(BUILD) -Ibpf -c $< -o $@.tmp
	llvm-strip -g $@.tmp 2>/dev/null || true
	mv $@.tmp $@

test: bpf
	$(PYTHON) -m pytest -q tests

clean:
	rm -rf build $(OUT)
