// SPDX-License-Identifier: GPL-2.0
/* bandwidth: bytes actually sent and received per (pid, TCP connection).
 *
 * Fast path (typed hooks): counters in the socket's own storage, no hashing
 * per call. Each interval the dump_conns iterator reads and resets them; a
 * socket that closes first moves its counts into the interval map.
 * Slow path (fallback hooks, or a second process on the same socket): sums in
 * one of two hash maps; user space flips `bw_slot` each interval and drains
 * the map no longer written to. */
#include "common.bpf.h"
#include "sock_counts.bpf.h"

#define MSG_PEEK 2
#define MAX_CONNS 262144 /* allocated as used (BPF_F_NO_PREALLOC) */

struct conn_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
};

struct conn_map conns_a SEC(".maps");
struct conn_map conns_b SEC(".maps");

/* Which map the slow path writes to: 0 = conns_a, 1 = conns_b. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bw_slot SEC(".maps");

static __always_inline void add_to(void *conns, const struct conn_key *key, const char *comm,
				   __u64 rx_bytes, __u64 tx_bytes)
{
	struct conn_val *val = bpf_map_lookup_elem(conns, key);

	// first bytes of this connection in the interval: create its entry
	if (!val) {
		struct conn_val zero = {};

		bpf_probe_read_kernel(zero.comm, sizeof(zero.comm), comm);
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

/* Add to the map user space is not draining. */
static __always_inline void add_to_slot(const struct conn_key *key, const char *comm,
					__u64 rx_bytes, __u64 tx_bytes)
{
	__u32 zero = 0, *slot = bpf_map_lookup_elem(&bw_slot, &zero);

	if (slot && *slot)
		add_to(&conns_b, key, comm, rx_bytes, tx_bytes);
	else
		add_to(&conns_a, key, comm, rx_bytes, tx_bytes);
}

/* Slow path: hash by (pid, connection). */
static __always_inline int count_bytes(struct sock *sk, int ret, bool rx, bool typed)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct conn_key key = {};
	char comm[COMM_LEN];

	// errors and zero-length calls moved no data
	if (ret <= 0 || !is_inet_tcp(sk, typed) || !pid_wanted(pid))
		return 0;
	key.pid = pid;
	read_endpoints(sk, typed, &key.family, key.laddr, key.raddr, &key.lport, &key.rport);
	bpf_get_current_comm(comm, sizeof(comm));
	add_to_slot(&key, comm, rx ? ret : 0, rx ? 0 : ret);
	return 0;
}

/* Fast path: the socket's own counters. */
static __always_inline int count_in_socket(struct sock *sk, int ret, bool rx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct sock_counts *c;

	if (ret <= 0 || !is_inet_tcp(sk, true) || !pid_wanted(pid))
		return 0;
	c = bpf_sk_storage_get(&sock_counts, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	// no storage, or the socket's counts are another process's: hash path
	if (!c || (c->pid && c->pid != pid))
		return count_bytes(sk, ret, rx, true);
	if (!c->pid) {
		bpf_get_current_comm(c->comm, sizeof(c->comm));
		c->pid = pid;
	}
	if (rx)
		__sync_fetch_and_add(&c->rx_bytes, ret);
	else
		__sync_fetch_and_add(&c->tx_bytes, ret);
	return 0;
}

/* Take a socket's counts (for the row in `row`); adds racing with us stay. */
static __always_inline bool take_counts(struct sock *sk, struct sock_counts *c,
					struct conn_row *row)
{
	row->val.rx_bytes = c->rx_bytes;
	row->val.tx_bytes = c->tx_bytes;
	if (!row->val.rx_bytes && !row->val.tx_bytes)
		return false;
	row->key.pid = c->pid;
	__builtin_memcpy(row->val.comm, c->comm, COMM_LEN);
	read_endpoints(sk, false, &row->key.family, row->key.laddr, row->key.raddr,
		       &row->key.lport, &row->key.rport);
	return true;
}

static __always_inline void forget_counts(struct sock_counts *c, const struct conn_row *row)
{
	__sync_fetch_and_sub(&c->rx_bytes, row->val.rx_bytes);
	__sync_fetch_and_sub(&c->tx_bytes, row->val.tx_bytes);
}

/* Preferred: socket-layer tracepoints carry the bytes actually moved. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_send, struct sock *sk, int ret, int flags)
{
	return count_in_socket(sk, ret, false);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_recv, struct sock *sk, int ret, int flags)
{
	// a peek leaves the data queued: it is counted when really read
	if (flags & MSG_PEEK)
		return 0;
	return count_in_socket(sk, ret, true);
}

/* A closing socket's storage goes with it: move its counts to the map. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_close, struct sock *sk, int oldstate, int newstate)
{
	struct conn_row row = {};
	struct sock_counts *c;

	if (newstate != BPF_TCP_CLOSE)
		return 0;
	c = bpf_sk_storage_get(&sock_counts, sk, 0, 0);
	if (c && take_counts(sk, c, &row)) {
		forget_counts(c, &row);
		add_to_slot(&row.key, row.val.comm, row.val.rx_bytes, row.val.tx_bytes);
	}
	return 0;
}

/* Each socket's counts since the last drain; with `drain`, reset them. */
static __always_inline int dump_sockets(struct bpf_iter__bpf_sk_storage_map *ctx, bool drain)
{
	struct sock *sk = ctx->sk;
	struct conn_row row = {};
	struct sock_counts *c;

	if (!sk || !ctx->value)
		return 0;
	c = bpf_sk_storage_get(&sock_counts, sk, 0, 0);
	if (!c || !take_counts(sk, c, &row))
		return 0;
	// reset only what was written: a retried seq_file read must not lose it
	if (bpf_seq_write(ctx->meta->seq, &row, sizeof(row)) == 0 && drain)
		forget_counts(c, &row);
	return 0;
}

SEC("iter/bpf_sk_storage_map")
int dump_conns(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	return dump_sockets(ctx, true);
}

SEC("iter/bpf_sk_storage_map")
int peek_conns(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	return dump_sockets(ctx, false);
}

/* Fallback 1 (kernels before 6.4): fexit on the TCP functions. */
SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_send, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return count_bytes(sk, ret, false, true);
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_recv, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	if (flags & MSG_PEEK)
		return 0;
	return count_bytes(sk, ret, true, true);
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
	count_bytes((struct sock *)*ptr, ret, rx, false);
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
