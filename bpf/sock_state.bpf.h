/* SPDX-License-Identifier: GPL-2.0 */
/* What nettrail knows about each TCP socket, in the socket's own storage
 * (freed with the socket), shared by the bandwidth and sessions probes (the
 * map is reused by fd): its owner, since when it is known, which side it is,
 * and the counters the bandwidth probe last reported.
 *
 * Nothing here runs per packet or per send/recv: the state changes of
 * inet_sock_set_state and one pass per interval over every process's open
 * files (iter/task_file) read what TCP already counts. */
#ifndef NETTRAIL_SOCK_STATE_BPF_H
#define NETTRAIL_SOCK_STATE_BPF_H

struct sock_state {
	__u64 opened_ns;     /* 0: opened before the window */
	__u64 cgroup_id;     /* the owner's cgroup v2 id */
	__u64 rx_seen;       /* payload counters as last reported (bandwidth) */
	__u64 tx_seen;
	__u64 retrans_seen;
	__u64 chrono_seen[3]; /* busy, rwnd-, sndbuf-limited jiffies as last reported */
	__u64 retrans_segs_seen; /* segment counters as last reported (bandwidth) */
	__u64 lost_seen;
	__u64 rto_seen;
	__u64 segs_out_seen;
	__u32 pid;           /* owner (tgid), 0 while unknown; kept for the socket's life */
	__u32 nspid;         /* the owner's pid in its own pid namespace */
	__u32 connect_us;    /* sessions: see struct session_event */
	__u32 syn_retrans;
	__u8 side;           /* enum conn_side */
	__u8 listed;         /* sessions: written by the open-sessions pass */
	__u8 closed;         /* reached TCP_CLOSE: a connect after it is a new session */
	__u8 handshake;      /* connect_us and syn_retrans taken */
	__u8 pending;        /* sessions: its record waits for an owner (see pending) */
	__u8 pad[3];
	char comm[COMM_LEN]; /* the owner's thread-group leader's name */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} sock_state SEC(".maps");

/* The same state by socket address, where a pass cannot reach socket storage
 * (file_sockets_untrusted): created as above, deleted at the socket's
 * destruction (forget_state), before its memory can hold another socket. */
#define MAX_STATES 262144

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STATES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sock_state);
} sock_state_at SEC(".maps");

struct payload {
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u64 retrans_bytes;
	__u64 chrono[3];     /* busy, rwnd-, sndbuf-limited time so far, jiffies */
	__u64 retrans_segs;
	__u64 lost_segs;
	__u64 rto_count;     /* 0 where the kernel has no total_rto (before 6.7) */
	__u64 segs_out;
};

/* TCP's chrono stats as tcp_info reads them (tcp_get_info_chrono_stats):
 * what ended periods added, plus the running period. In jiffies: the
 * bandwidth probe turns them into µs once it knows the tick rate. Read
 * without the lock a period's switch may be caught half done and read high
 * for a moment; take() never goes back, so it is counted once. */
static __always_inline void read_chrono(const struct tcp_sock *tp, __u64 *chrono)
{
	__u32 now = (__u32)bpf_jiffies64(), start = tp->chrono_start;
	// an unsigned 2-bit field before 6.5, a byte since: the CO-RE bitfield read does both
	__u8 type = BPF_CORE_READ_BITFIELD(tp, chrono_type);

	for (int i = 0; i < 3; i++)
		chrono[i] = tp->chrono_stat[i];
	if (type >= 1 && type <= 3)
		chrono[type - 1] += now - start;
}

/* The segment counters tcp_info reports, as totals. */
static __always_inline void read_segments(const struct tcp_sock *tp, struct payload *p)
{
	p->retrans_segs = tp->total_retrans;
	p->lost_segs = tp->lost;
	p->rto_count = bpf_core_field_exists(tp->total_rto) ? tp->total_rto : 0;
	p->segs_out = tp->segs_out;
}

/* Someone is in TCP's code for this socket right now: its owner (lock_sock,
 * which also covers the backlog it processes) or the softirq (the spinlock).
 * Read between a counter's load and its flag's, it catches a torn pair
 * (see read_payload). */
static __always_inline bool busy(const struct sock *sk)
{
	if (sk->sk_lock.owned)
		return true;
	// a PREEMPT_RT spinlock has no such word: call it busy
	if (!bpf_core_field_exists(sk->sk_lock.slock.rlock.raw_lock.val))
		return true;
	return sk->sk_lock.slock.rlock.raw_lock.val.counter != 0;
}

/* How a reading of a socket's counters may err, by who reads. */
enum reading {
	READ_LOCKED,     /* a state change, under the socket's lock: exact */
	READ_NEVER_HIGH, /* a pass taking what moved: may be a byte low */
	READ_NEVER_LOW,  /* a pass's first sight of a socket (its baseline), or
			  * the window's last reading: may be a byte high */
};

/* Our FIN is queued (its sequence number in write_seq) in these states
 * only: an abortive close sets SEND_SHUTDOWN but sends none. (A tcp_sock
 * never stores TIME_WAIT: tcp_time_wait() hands over and closes it.) */
static __always_inline bool fin_queued(int state)
{
	return state == BPF_TCP_FIN_WAIT1 || state == BPF_TCP_FIN_WAIT2 ||
	       state == BPF_TCP_CLOSING || state == BPF_TCP_LAST_ACK;
}

/* TCP's own counters as payload bytes: bytes_received less the peer's FIN
 * (SOCK_DONE), bytes_acked less our FIN (queued, and acked: snd_una reached
 * write_seq). A client's bytes_acked also counts its SYN: the state's
 * baseline holds it (see new_state).
 *
 * A pass reads without the lock, while TCP may be between the two stores of
 * a FIN's arrival (bytes_received, then SOCK_DONE) or of its ACK
 * (bytes_acked, then snd_una). Never high: load the counters, then busy(),
 * then the flags; a counter seen moved with its flag not yet set means TCP
 * is in that update, so busy() is true, and the FIN is assumed in (take()
 * never goes back, so a byte held back counts at the next reading). Never
 * low: load the state, busy(), the flags, then the counters, which hold
 * every FIN the flags show; busy() is true for an owner between queueing
 * its FIN (state) and counting it (write_seq), and then no FIN is assumed.
 * x86 keeps loads in order; barrier() keeps the compiler from reordering
 * them. A pass that finds the socket closed reads nothing (false): its
 * close took its last bytes, exactly, before the state was stored. */
static __always_inline bool read_payload(const struct tcp_sock *tp, struct payload *p,
					 enum reading how)
{
	const struct sock *sk = (const struct sock *)tp;
	unsigned long done = 1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE);
	bool racing = false, sent_fin, rx_fin, tx_fin;
	__u64 rx = 0, tx = 0;
	int state;

	if (how == READ_NEVER_HIGH) {
		rx = tp->bytes_received;
		tx = tp->bytes_acked;
	}
	barrier();
	state = sk->__sk_common.skc_state;
	if (how != READ_LOCKED && state == BPF_TCP_CLOSE)
		return false;
	sent_fin = fin_queued(state);
	barrier();
	if (how != READ_LOCKED)
		racing = busy(sk);
	barrier();
	rx_fin = racing ? how == READ_NEVER_HIGH : !!(sk->__sk_common.skc_flags & done);
	tx_fin = sent_fin && (racing ? how == READ_NEVER_HIGH : tp->snd_una == tp->write_seq);
	barrier();
	if (how != READ_NEVER_HIGH) {
		rx = tp->bytes_received;
		tx = tp->bytes_acked;
	}
	p->rx_bytes = rx - (rx && rx_fin);
	p->tx_bytes = tx - (tx && tx_fin);
	p->retrans_bytes = tp->bytes_retrans;
	read_chrono(tp, p->chrono);
	read_segments(tp, p);
	return true;
}

/* Side of a socket first seen in a pass (opened before the window): an
 * accepted socket is a copy of its listener and keeps the listen backlog; a
 * connected one never had one. (listen(0) servers read as clients.) */
static __always_inline __u8 side_from_backlog(const struct sock *sk)
{
	return sk->sk_max_ack_backlog ? SIDE_SERVER : SIDE_CLIENT;
}

/* The SYN a client's bytes_acked counts once the handshake completes. */
static __always_inline __u64 syn_in_acked(__u8 side, __u64 tx_acked)
{
	return side == SIDE_CLIENT && tx_acked ? 1 : 0;
}

/* The socket's state; created (with `init`) if it has none yet. Racing
 * creators agree: the storage keeps whichever init came first. */
static __always_inline struct sock_state *state_of(struct sock *sk, struct sock_state *init)
{
	__u64 key = (__u64)sk;
	struct sock_state *s;

	if (!file_sockets_untrusted) {
		s = bpf_sk_storage_get(&sock_state, sk, init, init ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	} else {
		s = bpf_map_lookup_elem(&sock_state_at, &key);
		if (!s && init) {
			bpf_map_update_elem(&sock_state_at, &key, init, BPF_NOEXIST);
			s = bpf_map_lookup_elem(&sock_state_at, &key);
		}
	}
	if (!s && init)
		stat_inc(STAT_MAP_FULL);
	return s;
}

/* State for a socket first seen now: counters so far are before the window
 * (or, for a new client, the SYN), so the bandwidth probe starts from them. */
static __always_inline struct sock_state *new_state(struct sock *sk, __u8 side, bool opening)
{
	struct sock_state init = {}, *s;
	struct payload p = {};

	// a pass's socket that closed meanwhile reads nothing: its state is moot
	read_payload((const struct tcp_sock *)sk, &p, opening ? READ_LOCKED : READ_NEVER_LOW);
	init.side = side;
	init.opened_ns = opening ? bpf_ktime_get_boot_ns() : 0;
	init.rx_seen = p.rx_bytes;
	// a client's SYN is acked with the handshake: baseline it if still to come
	init.tx_seen = p.tx_bytes + (side == SIDE_CLIENT && !p.tx_bytes);
	init.retrans_seen = p.retrans_bytes;
	for (int i = 0; i < 3; i++)
		init.chrono_seen[i] = p.chrono[i];
	init.retrans_segs_seen = p.retrans_segs;
	init.lost_seen = p.lost_segs;
	init.rto_seen = p.rto_count;
	init.segs_out_seen = p.segs_out;
	s = state_of(sk, &init);
	// a connect on a closed socket's state: one reused after tcp_disconnect(),
	// which zeroed TCP's counters: a new session, its owner claimed anew (by
	// address, a state found at an opening is never this session's)
	if (s && opening && (s->closed || file_sockets_untrusted))
		*s = init;
	return s;
}

/* A socket is destroyed: its state by address goes (its storage goes with it). */
static __always_inline void forget_state(struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (file_sockets_untrusted)
		bpf_map_delete_elem(&sock_state_at, &key);
}

/* Set before load: nettrail's own tgid. A pass holds each file it visits
 * for a moment, so a socket whose owner closes it then is closed in
 * nettrail's task (the last reference dropped), never by its owner. */
const volatile __u32 self_tgid = 0;

#define PF_KTHREAD 0x00200000

/* The task a state change runs in, if it may be the socket's owner: not a
 * kernel thread (a deferred last close), not nettrail (see self_tgid). */
static __always_inline struct task_struct *owner_context(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if ((task->flags & PF_KTHREAD) || task->tgid == self_tgid)
		return NULL;
	return task;
}

/* The first process known to hold a socket owns it for the socket's life. */
static __always_inline void claim(struct sock_state *s, struct task_struct *task)
{
	struct task_struct *leader;

	if (!s || s->pid || !task)
		return;
	leader = BPF_CORE_READ(task, group_leader);
	bpf_core_read_str(s->comm, sizeof(s->comm), &leader->comm);
	s->nspid = ns_pid(leader);
	s->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	s->pid = BPF_CORE_READ(task, tgid);
}

/* Transitions only the process holding the socket makes, in its own
 * context: connect, close or shutdown, an abortive close. (The handshake of
 * an accepted socket completes in whatever task runs: never a claim.) */
static __always_inline bool made_by_owner(int oldstate, int newstate, int sk_err)
{
	if (newstate == BPF_TCP_SYN_SENT)
		return true;
	if (oldstate == BPF_TCP_ESTABLISHED && newstate == BPF_TCP_FIN_WAIT1)
		return true;
	if (oldstate == BPF_TCP_CLOSE_WAIT && newstate == BPF_TCP_LAST_ACK)
		return true;
	return newstate == BPF_TCP_CLOSE && !sk_err &&
	       (oldstate == BPF_TCP_ESTABLISHED || oldstate == BPF_TCP_CLOSE_WAIT);
}

/* Listening sockets are not sessions; their children start LISTEN->SYN_RECV. */
static __always_inline bool is_session_change(const struct sock *sk, int oldstate, int newstate)
{
	if (newstate == BPF_TCP_LISTEN || (oldstate == BPF_TCP_LISTEN && newstate == BPF_TCP_CLOSE))
		return false;
	return is_inet_tcp(sk);
}

/* A handshake ends (established, or given up): how long it took and how
 * often its SYN or SYN-ACK was sent again (all a socket retransmits before
 * it is established; a child's total_retrans starts as its request's
 * num_retrans). A client's time is exact, from its connect. A server's
 * socket is created by the ACK completing the handshake, so its time is the
 * RTT sample TCP takes of that handshake just before this change (our
 * SYN-ACK to that ACK, by the timestamp it echoes: ms resolution; none, 0,
 * if a SYN-ACK was resent without timestamps). That sample is also the
 * socket's first RTT: see docs/probes.md for how sessions report it. */
static __always_inline void handshake_ends(struct sock *sk, struct sock_state *s, int oldstate,
					   int newstate)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 now_ns;

	if (s->handshake || (newstate != BPF_TCP_ESTABLISHED && newstate != BPF_TCP_CLOSE))
		return;
	if (oldstate == BPF_TCP_SYN_SENT) {
		// opened before the window (a pass saw it in SYN_SENT): its start is unknown
		if (!s->opened_ns)
			return;
		now_ns = bpf_ktime_get_boot_ns();
		s->connect_us = (now_ns - s->opened_ns) / 1000;
	} else {
		// a server's handshake that fails leaves no socket state worth a time
		if (newstate != BPF_TCP_ESTABLISHED)
			return;
		s->connect_us = tp->srtt_us >> 3;
	}
	s->syn_retrans = tp->total_retrans;
	s->handshake = 1;
}

/* Follow a session's state change: its state is created when it opens, and
 * its owner claimed on the transitions the owner makes. */
static __always_inline struct sock_state *track(struct sock *sk, int oldstate, int newstate)
{
	struct sock_state *s;

	if (newstate == BPF_TCP_SYN_SENT)
		s = new_state(sk, SIDE_CLIENT, true);
	else if (oldstate == BPF_TCP_LISTEN && newstate == BPF_TCP_SYN_RECV)
		s = new_state(sk, SIDE_SERVER, true);
	else
		s = state_of(sk, NULL);
	if (made_by_owner(oldstate, newstate, sk->sk_err))
		claim(s, owner_context());
	if (s && (oldstate == BPF_TCP_SYN_SENT || oldstate == BPF_TCP_SYN_RECV))
		handshake_ends(sk, s, oldstate, newstate);
	// a connect after this close is a new session (see new_state)
	if (s && newstate == BPF_TCP_CLOSE)
		s->closed = 1;
	return s;
}

/* A socket from a file as a TCP socket (see file_sockets_untrusted), or NULL. */
static __always_inline struct tcp_sock *file_tcp_sock(struct socket *sock)
{
	struct sock *sk;

	// the helper checks protocol and type itself: the pass's hot path
	if (!file_sockets_untrusted)
		return sock ? bpf_skc_to_tcp_sock(sock->sk) : NULL;
	sk = file_sock(sock, IPPROTO_TCP);
	if (!sk || sk->sk_type != SOCK_STREAM)
		return NULL;
	return rdonly_cast(sk, struct tcp_sock);
}

/* A socket, as a TCP socket with a connection (not listening, not closed),
 * or NULL. */
static __always_inline struct tcp_sock *connection_of(struct socket *sock)
{
	struct tcp_sock *tp = file_tcp_sock(sock);
	int state;

	if (!tp || !is_inet_tcp((struct sock *)tp))
		return NULL;
	state = ((struct sock *)tp)->__sk_common.skc_state;
	if (state == BPF_TCP_LISTEN || state == BPF_TCP_CLOSE)
		return NULL;
	return tp;
}

/* A socket in a process's file table, as connection_of() has it. */
static __always_inline struct tcp_sock *connection_in_file(struct file *file)
{
	return connection_of(bpf_sock_from_file(file));
}

/* A socket in a file table, as a closed TCP socket (reset before its
 * holder closed it: its owner may be unknown, see sessions' pending), or
 * NULL. */
static __always_inline struct sock *closed_of(struct socket *sock)
{
	struct sock *sk = (struct sock *)file_tcp_sock(sock);

	if (!sk)
		return NULL;
	return sk->__sk_common.skc_state == BPF_TCP_CLOSE ? sk : NULL;
}

/* A socket seen in `task`'s files during a pass: its state (created if the
 * socket opened before the window), owned by the first process seen. */
static __always_inline struct sock_state *state_in_pass(struct tcp_sock *tp,
							 struct task_struct *task)
{
	struct sock *sk = (struct sock *)tp;
	struct sock_state *s = state_of(sk, NULL);
	int state;

	if (!s) {
		state = sk->__sk_common.skc_state;
		s = state == BPF_TCP_SYN_SENT ? new_state(sk, SIDE_CLIENT, false)
					      : new_state(sk, side_from_backlog(sk), false);
	}
	claim(s, task);
	return s;
}

#endif /* NETTRAIL_SOCK_STATE_BPF_H */
