// SPDX-License-Identifier: GPL-2.0
/* sessions: one record per TCP session, with the socket's own counters, its
 * health (retransmits, RTT) and how it ended.
 *
 * Closed sessions come from inet_sock_set_state at their close. Owners come
 * from the transitions the owner makes itself (connect, close) and from the
 * passes over every process's open files (iter/task_file); sessions still
 * open at window end, in any network namespace, from the last such pass. */
#include "common.bpf.h"
#include "sock_state.bpf.h"

EVENT_TYPE(session_event);

#define ECONNREFUSED 111
#define ECONNRESET 104
#define ECONNABORTED 103
#define EPIPE 32

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Sessions closed before any owner was known while a process may still
 * hold them (reset before their owner closed them, unseen by a pass), by
 * socket address (deleted at its destruction, before it is freed): each record waits here for its socket's destruction, in
 * the last close of its holder, or for the window's end (user space reads
 * what is left, owned as dump_open found). */
#define MAX_PENDING 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PENDING);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct session_event);
} pending SEC(".maps");

/* How a session ended, from the state it left and the error TCP recorded
 * (set before the close: tcp_reset, tcp_write_err). No error and no FIN
 * exchange means this end aborted the connection: it sent the RST. */
static __always_inline __u8 session_end(int oldstate, int sk_err)
{
	if (oldstate == BPF_TCP_SYN_SENT)
		return sk_err == ECONNREFUSED ? END_REFUSED : END_TIMEOUT;
	if (sk_err == ECONNRESET || sk_err == EPIPE || sk_err == ECONNABORTED)
		return END_RESET;
	if (sk_err)
		return END_TIMEOUT;
	if (oldstate == BPF_TCP_ESTABLISHED || oldstate == BPF_TCP_CLOSE_WAIT ||
	    oldstate == BPF_TCP_SYN_RECV)
		return END_RESET;
	return END_NORMAL;
}

/* A session's record: SESSION_CLOSED at its close, under the socket's lock;
 * else from the window's last pass, false if it closed meanwhile (its close
 * wrote its record; see read_payload). */
static __always_inline bool fill_event(struct session_event *e, struct sock *sk,
				       const struct sock_state *s, __u8 state)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	struct payload p;

	if (!read_payload(tp, &p, state == SESSION_CLOSED ? READ_LOCKED : READ_NEVER_LOW))
		return false;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->opened_ns = s->opened_ns;
	e->side = s->side ? s->side : side_from_backlog(sk);
	e->tx_bytes = p.tx_bytes - syn_in_acked(e->side, p.tx_bytes);
	e->rx_bytes = p.rx_bytes;
	e->retrans_segs = tp->total_retrans;
	e->srtt_us = tp->srtt_us >> 3;
	// minmax's best sample (tcp_min_rtt): ~0U until a first sample
	e->min_rtt_us = tp->rtt_min.s[0].v == ~0U ? 0 : tp->rtt_min.s[0].v;
	e->handshake = s->handshake;
	e->connect_us = s->connect_us;
	e->syn_retrans = s->syn_retrans;
	e->netns = netns_of(sk);
	read_endpoints(sk, &e->family, e->laddr, e->raddr, &e->lport, &e->rport);
	e->pid = s->pid;
	e->nspid = s->nspid;
	e->cgroup_id = s->cgroup_id;
	__builtin_memcpy(e->comm, s->comm, COMM_LEN);
	e->state = state;
	return true;
}

/* Still in a process's hands (or its listener's accept queue): its last
 * close is yet to come. */
static __always_inline bool still_held(const struct sock *sk)
{
	unsigned long dead = 1UL << bpf_core_enum_value(enum sock_flags, SOCK_DEAD);

	return !(sk->__sk_common.skc_flags & dead);
}

/* The owner a pending session's socket state knows now, if any. */
static __always_inline void owner_into(struct session_event *e, const struct sock_state *s)
{
	if (!s || !s->pid)
		return;
	e->pid = s->pid;
	e->nspid = s->nspid;
	e->cgroup_id = s->cgroup_id;
	__builtin_memcpy(e->comm, s->comm, COMM_LEN);
}

/* Room in the ring for a record of `pid`'s, if it is wanted (a full ring
 * counted). */
static __always_inline struct session_event *reserve_for(__u32 pid)
{
	struct session_event *e;

	if (!pid_wanted(pid))
		return NULL;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		stat_inc(STAT_RINGBUF_FULL);
	return e;
}

/* A pending session's record, with the owner its socket's state knows now. */
static __always_inline void emit_pending(struct session_event *p, const struct sock_state *s)
{
	struct session_event *e;

	owner_into(p, s);
	if (!(e = reserve_for(p->pid)))
		return;
	__builtin_memcpy(e, p, sizeof(*e));
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* Its record waits for an owner (see pending); false when there is no room
 * (the map is filled by sockets nobody holds any more): written now instead */
static __always_inline bool defer_closed(struct sock *sk, struct sock_state *s, int oldstate)
{
	__u64 key = (__u64)sk;
	struct session_event e = {};

	fill_event(&e, sk, s, SESSION_CLOSED);
	e.end = session_end(oldstate, sk->sk_err);
	if (bpf_map_update_elem(&pending, &key, &e, BPF_ANY))
		return false;
	s->pending = 1;
	return true;
}

static __always_inline void emit_closed(struct sock *sk, const struct sock_state *s,
					int oldstate)
{
	struct session_event *e = reserve_for(s->pid);

	if (!e)
		return;
	fill_event(e, sk, s, SESSION_CLOSED);  // under the lock: always read
	e->end = session_end(oldstate, sk->sk_err);
	// no wakeup: user space drains on a timer, sparing the closing task the cost
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_state, struct sock *sk, int oldstate, int newstate)
{
	struct sock_state unknown = {}, *s;

	// the tcp_sock view: TCP's counters are plain loads beyond struct sock
	sk = (struct sock *)bpf_skc_to_tcp_sock(sk);
	if (!sk || !is_session_change(sk, oldstate, newstate))
		return 0;
	s = track(sk, oldstate, newstate);
	if (newstate != BPF_TCP_CLOSE)
		return 0;
	if (s && !s->pid && still_held(sk) && defer_closed(sk, s, oldstate))
		return 0;
	// no state (opened before the window, never seen held), or no room to
	// wait: the record now, its owner unknown
	emit_closed(sk, s ? s : &unknown, oldstate);
	return 0;
}

/* A socket is destroyed: a pending session's last close, by its holder
 * unless that ran in nettrail or a kernel thread; its state by address goes. */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tp_destroy, struct sock *sk)
{
	struct session_event *p;
	struct sock_state *s;
	__u64 key;

	sk = (struct sock *)bpf_skc_to_tcp_sock(sk);
	if (!sk)
		return 0;
	s = state_of(sk, NULL);
	key = (__u64)sk;
	// none: read by user space at the window's end
	if (s && s->pending && (p = bpf_map_lookup_elem(&pending, &key))) {
		claim(s, owner_context());
		emit_pending(p, s);
		bpf_map_delete_elem(&pending, &key);
	}
	forget_state(sk);
	return 0;
}

/* A closed socket in `task`'s files: `task` owns it, and its pending
 * record, if it has one. */
static __always_inline void claim_closed(struct file *file, struct task_struct *task)
{
	struct sock *sk = closed_of(bpf_sock_from_file(file));
	struct session_event *p;
	struct sock_state *s;
	__u64 key;

	if (!sk || !(s = state_of(sk, NULL)))
		return;
	claim(s, task);
	if (!s->pending)
		return;
	key = (__u64)sk;
	p = bpf_map_lookup_elem(&pending, &key);
	if (p)
		owner_into(p, s);
}

/* Between the window's passes (without the bandwidth probe, whose passes
 * do it): learn the owners of the sockets processes hold. */
SEC("iter/task_file")
int claim_owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct tcp_sock *tp;

	if (!task || !file)
		return 0;
	if ((tp = connection_in_file(file)))
		state_in_pass(tp, task);
	else
		claim_closed(file, task);
	return 0;
}

/* At window end: every session a process holds, once, with its bytes so
 * far; the pending records of the closed ones get their holder. */
SEC("iter/task_file")
int dump_open(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct session_event e = {};
	struct sock_state *s;
	struct tcp_sock *tp;

	if (!task || !file)
		return 0;
	if (!(tp = connection_in_file(file))) {
		claim_closed(file, task);
		return 0;
	}
	s = state_in_pass(tp, task);
	if (!s || s->listed || !pid_wanted(s->pid))
		return 0;
	if (!fill_event(&e, (struct sock *)tp, s, SESSION_OPEN))
		return 0;
	// listed only once written: a record the seq_file could not take is shown again
	if (!bpf_seq_write(ctx->meta->seq, &e, sizeof(e)))
		s->listed = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
