// SPDX-License-Identifier: GPL-2.0
/* sessions: one record per TCP session, with the socket's own byte counters.
 * The owner is the process that connected, did I/O on, or closed the socket;
 * transitions made in softirq (the handshake of an accepted connection) never
 * claim it. Sessions still open at window end come from the tcp iterator. */
#include "common.bpf.h"
#include "sock_counts.bpf.h"

/* Set before load: the bandwidth probe runs and shares sock_counts (the map
 * is reused by fd), so the owner is its first I/O process and this probe
 * needs no I/O hooks of its own. */
const volatile bool shared_counts = false;

#define MAX_SESSIONS 262144 /* allocated as used (BPF_F_NO_PREALLOC) */

struct owner {
	__u64 opened_ns; /* 0: opened before the window */
	__u32 pid;       /* 0: not claimed yet */
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* struct sock * */
	__type(value, struct owner);
} sessions SEC(".maps");

/* Typed hooks: sockets whose owner is known, so their I/O can be skipped
 * without a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} claimed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* The session's entry, created on first sight. */
static __always_inline struct owner *track(const struct sock *sk, bool opening)
{
	__u64 key = (__u64)sk;
	struct owner *o = bpf_map_lookup_elem(&sessions, &key);
	struct owner fresh = {};

	if (o)
		return o;
	// first seen opening: it started in the window; otherwise before it
	if (opening)
		fresh.opened_ns = bpf_ktime_get_boot_ns();
	bpf_map_update_elem(&sessions, &key, &fresh, BPF_NOEXIST);
	o = bpf_map_lookup_elem(&sessions, &key);
	if (!o)
		stat_inc(STAT_MAP_FULL);
	return o;
}

/* The owner from the bandwidth probe's per-socket counters, if unknown yet. */
static __always_inline void owner_from_counts(struct sock *sk, struct owner *o)
{
	struct sock_counts *c;

	if (o->pid || !shared_counts)
		return;
	c = bpf_sk_storage_get(&sock_counts, sk, 0, 0);
	if (c && c->pid) {
		o->pid = c->pid;
		__builtin_memcpy(o->comm, c->comm, COMM_LEN);
	}
}

/* The task running now owns the socket, unless someone already does. */
static __always_inline void claim(struct owner *o)
{
	if (o->pid)
		return;
	o->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/* Payload bytes from TCP's own counters: retransmissions do not count, and
 * neither do SYN and FIN, which bytes_acked/bytes_received include. */
static __always_inline void read_bytes(const struct sock *sk, __u64 *tx_bytes,
				       __u64 *rx_bytes)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	unsigned long done = 1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE);

	*tx_bytes = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
	*rx_bytes = BPF_CORE_READ(tp, bytes_received);
	// SOCK_DONE: the peer's FIN arrived and took one sequence number
	if (*rx_bytes && (BPF_CORE_READ(sk, __sk_common.skc_flags) & done))
		*rx_bytes -= 1;
}

/* Rare paths (state changes, the iterator) read with probe reads everywhere. */
static __always_inline void fill_event(struct session_event *e, const struct sock *sk,
				       const struct owner *o, __u8 state)
{
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->opened_ns = o->opened_ns;
	read_bytes(sk, &e->tx_bytes, &e->rx_bytes);
	read_endpoints(sk, false, &e->family, e->laddr, e->raddr, &e->lport, &e->rport);
	e->pid = o->pid;
	__builtin_memcpy(e->comm, o->comm, COMM_LEN);
	e->state = state;
}

static __always_inline void emit_closed(const struct sock *sk, const struct owner *o)
{
	struct session_event *e;

	if (!pid_wanted(o->pid))
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_RINGBUF_FULL);
		return;
	}
	fill_event(e, sk, o, SESSION_CLOSED);
	// no wakeup: user space drains on a timer, sparing the traced task the cost
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline int state_change(struct sock *sk, int oldstate, int newstate,
					bool typed)
{
	__u64 key = (__u64)sk;
	struct owner unknown = {}, *o;

	// listening sockets are not sessions; their children start LISTEN->SYN_RECV
	if (newstate == BPF_TCP_LISTEN || (oldstate == BPF_TCP_LISTEN && newstate == BPF_TCP_CLOSE) ||
	    !is_inet_tcp(sk, false))
		return 0;
	o = bpf_map_lookup_elem(&sessions, &key);
	if (!o && newstate != BPF_TCP_CLOSE)
		o = track(sk, newstate == BPF_TCP_SYN_SENT || newstate == BPF_TCP_SYN_RECV);
	// transitions the owning process makes itself: connect, close, shutdown
	if (o && (newstate == BPF_TCP_SYN_SENT ||
		  (oldstate == BPF_TCP_ESTABLISHED && newstate == BPF_TCP_FIN_WAIT1) ||
		  (oldstate == BPF_TCP_CLOSE_WAIT && newstate == BPF_TCP_LAST_ACK)))
		claim(o);
	if (newstate != BPF_TCP_CLOSE)
		return 0;
	// closed: report it (untracked: opened before the window)
	if (!o)
		o = &unknown;
	if (typed)
		owner_from_counts(sk, o);
	emit_closed(sk, o);
	bpf_map_delete_elem(&sessions, &key);
	return 0;
}

/* I/O on a socket: the caller owns it; a session older than the window
 * becomes known here. */
static __always_inline int saw_io(struct sock *sk, int ret, bool typed)
{
	struct owner *o;

	if (ret <= 0 || !is_inet_tcp(sk, typed))
		return 0;
	// owner already known: nothing to do (socket storage needs a typed pointer)
	if (typed && bpf_sk_storage_get(&claimed, sk, 0, 0))
		return 0;
	o = track(sk, false);
	if (!o)
		return 0;
	claim(o);
	if (typed)
		bpf_sk_storage_get(&claimed, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	return 0;
}

/* Preferred hooks: BTF-typed tracepoints. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_state, struct sock *sk, const int oldstate, const int newstate)
{
	return state_change(sk, oldstate, newstate, true);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_send, struct sock *sk, int ret, int flags)
{
	return saw_io(sk, ret, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_recv, struct sock *sk, int ret, int flags)
{
	return saw_io(sk, ret, true);
}

/* Fallback: untyped raw tracepoints (no BTF trampoline needed). */
SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_state, struct sock *sk, int oldstate, int newstate)
{
	return state_change(sk, oldstate, newstate, false);
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(raw_send, struct sock *sk, int ret, int flags)
{
	return saw_io(sk, ret, false);
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(raw_recv, struct sock *sk, int ret, int flags)
{
	return saw_io(sk, ret, false);
}

/* At window end: every tracked session still open, with bytes so far. */
SEC("iter/tcp")
int dump_open(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct session_event e = {};
	struct owner found = {}, *o;
	struct tcp_sock *tp;
	__u64 key;

	if (!skc)
		return 0;
	// time-wait and request sockets are not full sockets: skip them
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	key = (__u64)skc;
	o = bpf_map_lookup_elem(&sessions, &key);
	if (o)
		__builtin_memcpy(&found, o, sizeof(found));
	// untracked but with traffic in the window: opened before it
	else if (shared_counts)
		owner_from_counts((struct sock *)tp, &found);
	if ((!o && !found.pid) || !pid_wanted(found.pid))
		return 0;
	fill_event(&e, (const struct sock *)tp, &found, SESSION_OPEN);
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
