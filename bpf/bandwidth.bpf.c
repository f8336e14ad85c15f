// SPDX-License-Identifier: GPL-2.0
/* bandwidth: bytes actually sent and received per (pid, TCP connection),
 * summed in the kernel into one of two maps; user space flips `bw_slot`
 * each interval and drains the map no longer written to. */
#include "common.bpf.h"

#define MSG_PEEK 2
#define MAX_CONNS 16384

struct conn_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
};

struct conn_map conns_a SEC(".maps");
struct conn_map conns_b SEC(".maps");

/* Which map the probes write to: 0 = conns_a, 1 = conns_b. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bw_slot SEC(".maps");

static __always_inline void add_to(void *conns, const struct conn_key *key,
				   __u64 rx_bytes, __u64 tx_bytes)
{
	struct conn_val *val = bpf_map_lookup_elem(conns, key);

	// first bytes of this connection in the interval: create its entry
	if (!val) {
		struct conn_val zero = {};

		bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		bpf_map_update_elem(conns, key, &zero, BPF_NOEXIST);
		val = bpf_map_lookup_elem(conns, key);
		if (!val) {
			stat_inc(STAT_MAP_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&val->rx_bytes, rx_bytes);
	__sync_fetch_and_add(&val->tx_bytes, tx_bytes);
}

static __always_inline int count_bytes(struct sock *sk, int ret, bool rx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct conn_key key = {};
	__u32 zero = 0, *slot;

	// errors and zero-length calls moved no data
	if (ret <= 0 || !is_inet_tcp(sk) || !pid_wanted(pid))
		return 0;
	key.pid = pid;
	read_endpoints(sk, &key.family, key.laddr, key.raddr, &key.lport, &key.rport);
	// write to the map user space is not draining
	slot = bpf_map_lookup_elem(&bw_slot, &zero);
	if (slot && *slot)
		add_to(&conns_b, &key, rx ? ret : 0, rx ? 0 : ret);
	else
		add_to(&conns_a, &key, rx ? ret : 0, rx ? 0 : ret);
	return 0;
}

/* Preferred: socket-layer tracepoints carry the bytes actually moved. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_send, struct sock *sk, int ret, int flags)
{
	return count_bytes(sk, ret, false);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_recv, struct sock *sk, int ret, int flags)
{
	// a peek leaves the data queued: it is counted when really read
	if (flags & MSG_PEEK)
		return 0;
	return count_bytes(sk, ret, true);
}

/* Fallback 1 (kernels before 6.4): fexit on the TCP functions. */
SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_send, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return count_bytes(sk, ret, false);
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_recv, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	if (flags & MSG_PEEK)
		return 0;
	return count_bytes(sk, ret, true);
}

/* Fallback 2 (no BTF trampolines): kprobe + kretprobe, socket stashed per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, __u64);
} stash SEC(".maps");

static __always_inline int stash_sock(struct sock *sk, bool skip)
{
	__u64 tid = bpf_get_current_pid_tgid(), ptr = (__u64)sk;

	if (!skip)
		bpf_map_update_elem(&stash, &tid, &ptr, BPF_ANY);
	return 0;
}

static __always_inline int unstash_count(int ret, bool rx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 *ptr = bpf_map_lookup_elem(&stash, &tid);

	if (!ptr)
		return 0;
	count_bytes((struct sock *)*ptr, ret, rx);
	bpf_map_delete_elem(&stash, &tid);
	return 0;
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kp_send, struct sock *sk)
{
	return stash_sock(sk, false);
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(krp_send, int ret)
{
	return unstash_count(ret, false);
}

/* Set before load: tcp_recvmsg took a `nonblock` argument before 5.19,
 * which put `flags` 5th instead of 4th. */
const volatile bool recv_flags_arg5 = false;

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kp_recv, struct sock *sk, struct msghdr *msg, size_t len, long arg4, long arg5)
{
	long flags = recv_flags_arg5 ? arg5 : arg4;

	return stash_sock(sk, (flags & MSG_PEEK) != 0);
}

SEC("kretprobe/tcp_recvmsg")
int BPF_KRETPROBE(krp_recv, int ret)
{
	return unstash_count(ret, true);
}

char LICENSE[] SEC("license") = "GPL";
