#!/bin/sh
# Proof that a VM of vm/run.py is fit for the kernel tests:
#   python3 vm/run.py --kernel 6.1 --kernel 6.12 -- sh vm/smoke.sh [OBJ.bpf.o...]
# Each OBJ (e.g. the project's CO-RE probes, built on the host) is loaded too.
# Each check prints one line; the exit status is the number that failed.
failed=0
check() {
    name=$1; shift
    if out=$("$@" 2>&1); then
        echo "ok   $name: $(echo "$out" | tail -n 1)"
    else
        echo "FAIL $name: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
        failed=$((failed + 1))
    fi
}

check "kernel" python3 -c 'import platform; print(platform.release())'
check "root" sh -c 'test "$(id -u)" = 0 && echo uid 0'
check "CI passed" sh -c 'test "$CI" = true && echo "CI=$CI"'
check "BTF" ls -l /sys/kernel/btf/vmlinux
check "bpffs" sh -c 'stat -f -c %T /sys/fs/bpf | grep -x bpf_fs'
check "cgroup2" sh -c 'stat -f -c %T /sys/fs/cgroup | grep -x cgroup2fs'
check "tracefs" cat /sys/kernel/tracing/events/sock/inet_sock_set_state/id
check "writable" sh -c 'for d in /tmp /run /var/tmp /etc/netns /dev/shm "$PWD"; do
    mkdir -p "$d" && touch "$d/.vm-w" && rm "$d/.vm-w" || exit 1; done; echo /tmp /run /var /etc "$PWD"'
check "copy-up" sh -c 'echo "127.0.0.2 vm-smoke" >>/etc/hosts && getent hosts vm-smoke'
check "loopback" python3 -c 'import socket; s = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(s.getsockname()); print("lo up, tcp to", s.getsockname())'
check "no network device" sh -c '! ip -o link show | grep -v " lo:" && echo "only lo"'
check "netns" sh -c 'ip netns add smoke && ip netns exec smoke ip -br link && ip netns del smoke'
check "veth" sh -c 'ip link add vm-a type veth peer name vm-b && ip link del vm-a && echo veth module: $(lsmod | grep -c "^veth")'
check "modprobe nf_tables" sh -c 'modprobe nf_tables && lsmod | grep ^nf_tables'
check "bpftool prog list" sh -c 'bpftool prog list >/dev/null && echo "$(bpftool prog list | grep -c "^[0-9]") programs"'
check "bpftool feature probe" sh -c 'bpftool feature probe kernel | grep -m1 "eBPF program_type kprobe"'

# A tiny program compiled here with clang, loaded and pinned with bpftool.
cat >/tmp/vm-smoke.bpf.c <<'EOF'
#define SEC(n) __attribute__((section(n), used))
SEC("socket") int vm_smoke(void *ctx) { return 0; }
char _license[] SEC("license") = "GPL";
EOF
check "clang -target bpf" clang -O2 -target bpf -c /tmp/vm-smoke.bpf.c -o /tmp/vm-smoke.bpf.o
check "bpftool prog load" sh -c 'bpftool prog load /tmp/vm-smoke.bpf.o /sys/fs/bpf/vm_smoke &&
    bpftool prog show pinned /sys/fs/bpf/vm_smoke | head -n 1 && rm /sys/fs/bpf/vm_smoke'

# The objects named as arguments: load (verifier, CO-RE relocations), no attach.
for obj in "$@"; do
    name=$(basename "$obj" .bpf.o)
    check "load $obj" sh -c "bpftool prog loadall $obj /sys/fs/bpf/vm_$name >/dev/null &&
        echo \$(ls /sys/fs/bpf/vm_$name | wc -l) programs; rc=\$?; rm -rf /sys/fs/bpf/vm_$name; exit \$rc"
done

echo "smoke: $failed failed"
exit "$failed"
