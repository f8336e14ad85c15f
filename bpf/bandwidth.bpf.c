// SPDX-License-Identifier: GPL-2.0
/* bandwidth: payload bytes per (owner, TCP connection) per interval, from the
 * kernel's own per-socket TCP counters; no program per packet or per call.
 *
 * Once per interval the pass_conns iterator walks every process's open files
 * (every network namespace) and reports each TCP socket's counters' change
 * since it last reported them. A socket that closes between two passes is
 * read at its close and its change goes into the interval map: user space
 * flips `bw_slot` each interval and drains the map no longer written to.
 * Idle sockets (most of a busy host's) are passed over on TCP's own
 * stamps before their counters or state are touched. */
#include "common.bpf.h"
#include "sock_state.bpf.h"

EVENT_TYPE(conn_row);

#define MAX_CLOSED 262144 /* sockets closed in one interval; allocated as used */

struct conn_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CLOSED);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
};

struct conn_map conns_a SEC(".maps");
struct conn_map conns_b SEC(".maps");

/* Which map the close path writes to: 0 = conns_a, 1 = conns_b. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bw_slot SEC(".maps");

/* When the last three committed passes started, newest first (0: not yet),
 * in CLOCK_MONOTONIC µs as tcp_mstamp. Only the pass programs write them,
 * one pass at a time. (Not static: clang would split a static array into
 * variables whose names the kernel's BTF refuses.) */
__u64 pass_start_us[3] = {};

/* Most held sockets are idle: tell them apart by one stamp TCP keeps, before
 * touching anything else of the socket. tcp_mstamp is refreshed for every
 * segment received (tcp_rcv_established, tcp_rcv_state_process: every
 * change of bytes_received and bytes_acked) and before every send and
 * retransmission made by a write, a timer or a received ACK. (A
 * retransmission on an ICMP "fragmentation needed" alone is read when its
 * ACK or the retransmit timer comes.) Read with a probe read once the
 * socket is an inet stream, before it is known to be TCP (MPTCP): one of
 * another kind that looks busy is turned away by the full check after.
 * An accepted socket copies its listener's stamp, never set (0): it is not
 * quiet until its first segment or send, so a pass claims its owner. */
static __always_inline bool quiet_since(struct socket *sock, __u64 since_us)
{
	const struct tcp_sock *tp;
	__u64 mstamp_us;
	int family;

	if (!sock || !since_us || sock->type != SOCK_STREAM)
		return false;
	family = sock->ops->family;  // proto_ops: shared, so already cached
	if (family != AF_INET && family != AF_INET6)
		return false;
	tp = (const struct tcp_sock *)sock->sk;
	return !bpf_core_read(&mstamp_us, sizeof(mstamp_us), &tp->tcp_mstamp) &&
	       mstamp_us && mstamp_us < since_us;
}

/* The kernel's tick rate (CONFIG_HZ, which BTF does not hold), to turn the
 * chrono stats' jiffies into µs: measured from the window's first pass,
 * taken once the measure is within 5 % of a rate Linux allows (half a
 * second on, ±1 tick is at most 2 %; a close measures it too). 0 until
 * then: a pass leaves the chrono stats to a later reading, a close loses
 * them (its row says so). */
__u64 tick_anchor_ns = 0, tick_anchor_jiffies = 0;
__u32 tick_hz = 0;

static __always_inline bool near(__u64 hz, __u32 rate)
{
	return 20 * (hz > rate ? hz - rate : rate - hz) <= rate;
}

static __always_inline void measure_tick(void)
{
	__u64 now_ns = bpf_ktime_get_ns(), jiffies = bpf_jiffies64(), hz;

	if (!tick_anchor_ns) {
		tick_anchor_ns = now_ns;
		tick_anchor_jiffies = jiffies;
		return;
	}
	if (tick_hz || now_ns - tick_anchor_ns < 500000000ULL)
		return;
	hz = (jiffies - tick_anchor_jiffies) * 1000000000ULL / (now_ns - tick_anchor_ns);
	tick_hz = near(hz, 100) ? 100 : near(hz, 250) ? 250 : near(hz, 300) ? 300 :
		  near(hz, 1000) ? 1000 : 0;
}

/* A committed pass begins: it becomes the newest start. */
static __always_inline void pass_begins(void)
{
	pass_start_us[2] = pass_start_us[1];
	pass_start_us[1] = pass_start_us[0];
	pass_start_us[0] = bpf_ktime_get_ns() / 1000;
	measure_tick();
}

/* Take the change of one counter since it was last taken. A close and a
 * pass racing on one socket each take a disjoint part; a reading below the
 * last one taken (a pass's, see read_payload) takes nothing and leaves it. */
static __always_inline __u64 take(__u64 *seen, __u64 now)
{
	__u64 old = *seen, was;

	// a close and a pass (taking, or giving back) race: a few tries
	for (int i = 0; i < 4 && now > old; i++) {
		was = __sync_val_compare_and_swap(seen, old, now);
		if (was == old)
			return now - old;
		old = was;
	}
	return 0;
}

/* What a row took of the chrono stats, in jiffies (given back as such). */
struct taken {
	__u64 chrono[3];
};

/* Give back what was taken but could not be written (a pass retries it). */
static __always_inline void give_back(struct sock_state *s, const struct conn_val *val,
				      const struct taken *t)
{
	__sync_fetch_and_sub(&s->rx_seen, val->rx_bytes);
	__sync_fetch_and_sub(&s->tx_seen, val->tx_bytes);
	__sync_fetch_and_sub(&s->retrans_seen, val->retrans_bytes);
	__sync_fetch_and_sub(&s->retrans_segs_seen, val->retrans_segs);
	__sync_fetch_and_sub(&s->lost_seen, val->lost_segs);
	__sync_fetch_and_sub(&s->rto_seen, val->rto_count);
	__sync_fetch_and_sub(&s->segs_out_seen, val->segs_out);
	for (int i = 0; i < 3; i++)
		__sync_fetch_and_sub(&s->chrono_seen[i], t->chrono[i]);
}

/* Anything of a connection's counters moved since last taken (the chrono
 * stats only once they can be taken). */
static __always_inline bool moved(const struct sock_state *s, const struct payload *p,
				  bool chrono)
{
	if (p->rx_bytes != s->rx_seen || p->tx_bytes != s->tx_seen ||
	    p->retrans_bytes != s->retrans_seen || p->retrans_segs != s->retrans_segs_seen ||
	    p->lost_segs != s->lost_seen || p->rto_count != s->rto_seen ||
	    p->segs_out != s->segs_out_seen)
		return true;
	return chrono && (p->chrono[0] != s->chrono_seen[0] || p->chrono[1] != s->chrono_seen[1] ||
			  p->chrono[2] != s->chrono_seen[2]);
}

/* tcp_info's delivery rate: the last rate sample, bytes per second. */
static __always_inline __u64 delivery_rate(const struct tcp_sock *tp)
{
	__u64 delivered = tp->rate_delivered, interval_us = tp->rate_interval_us;

	if (!delivered || !interval_us)
		return 0;
	return delivered * tp->mss_cache * 1000000ULL / interval_us;
}

/* Take the kernel's chrono and segment counters into the row. */
static __always_inline void take_kernel_stats(struct sock_state *s, const struct payload *p,
					      struct conn_val *val, struct taken *t)
{
	__u32 hz = tick_hz;

	val->retrans_segs = take(&s->retrans_segs_seen, p->retrans_segs);
	val->lost_segs = take(&s->lost_seen, p->lost_segs);
	val->rto_count = take(&s->rto_seen, p->rto_count);
	val->segs_out = take(&s->segs_out_seen, p->segs_out);
	if (!hz)
		return;
	for (int i = 0; i < 3; i++)
		t->chrono[i] = take(&s->chrono_seen[i], p->chrono[i]);
	// tcpi_busy_time counts the limited periods too
	val->busy_us = (t->chrono[0] + t->chrono[1] + t->chrono[2]) * 1000000ULL / hz;
	val->rwnd_limited_us = t->chrono[1] * 1000000ULL / hz;
	val->sndbuf_limited_us = t->chrono[2] * 1000000ULL / hz;
	val->flags |= CONN_CHRONO;
}

/* A connection's change since last taken (its counters now: `p`), as a row;
 * false if nothing moved. With `commit` false (live view) the change in
 * bytes is only looked at. */
static __always_inline bool fill_row(struct sock *sk, struct sock_state *s,
				     const struct payload *p, struct conn_row *row, bool commit,
				     struct taken *t)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	struct conn_val *val = &row->val;

	// most held sockets are idle: leave their state untouched
	if (!moved(s, p, tick_hz != 0))
		return false;
	if (commit) {
		val->rx_bytes = take(&s->rx_seen, p->rx_bytes);
		val->tx_bytes = take(&s->tx_seen, p->tx_bytes);
		val->retrans_bytes = take(&s->retrans_seen, p->retrans_bytes);
		take_kernel_stats(s, p, val, t);
	} else {
		val->rx_bytes = p->rx_bytes > s->rx_seen ? p->rx_bytes - s->rx_seen : 0;
		val->tx_bytes = p->tx_bytes > s->tx_seen ? p->tx_bytes - s->tx_seen : 0;
	}
	if (!val->rx_bytes && !val->tx_bytes && !val->retrans_bytes && !val->retrans_segs &&
	    !val->lost_segs && !val->rto_count && !val->segs_out && !val->busy_us &&
	    !val->rwnd_limited_us &&
	    !val->sndbuf_limited_us)
		return false;
	if (bpf_core_field_exists(tp->total_rto))
		val->flags |= CONN_RTO;
	row->key.pid = s->pid;
	row->key.netns = netns_of(sk);
	read_endpoints(sk, &row->key.family, row->key.laddr, row->key.raddr, &row->key.lport,
		       &row->key.rport);
	val->cgroup_id = s->cgroup_id;
	val->srtt_us = tp->srtt_us >> 3;
	val->delivery_bytes_per_s = delivery_rate(tp);
	val->side = s->side;
	val->nspid = s->nspid;
	__builtin_memcpy(val->comm, s->comm, COMM_LEN);
	return true;
}

static __always_inline void add_to(void *conns, const struct conn_row *row)
{
	struct conn_val *val = bpf_map_lookup_elem(conns, &row->key);

	// usually new: one entry per socket closed in the interval
	if (!val) {
		if (!bpf_map_update_elem(conns, &row->key, &row->val, BPF_NOEXIST))
			return;
		val = bpf_map_lookup_elem(conns, &row->key);
		if (!val) {
			stat_inc(STAT_MAP_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&val->rx_bytes, row->val.rx_bytes);
	__sync_fetch_and_add(&val->tx_bytes, row->val.tx_bytes);
	__sync_fetch_and_add(&val->retrans_bytes, row->val.retrans_bytes);
	__sync_fetch_and_add(&val->busy_us, row->val.busy_us);
	__sync_fetch_and_add(&val->rwnd_limited_us, row->val.rwnd_limited_us);
	__sync_fetch_and_add(&val->sndbuf_limited_us, row->val.sndbuf_limited_us);
	__sync_fetch_and_add(&val->retrans_segs, row->val.retrans_segs);
	__sync_fetch_and_add(&val->lost_segs, row->val.lost_segs);
	__sync_fetch_and_add(&val->rto_count, row->val.rto_count);
	__sync_fetch_and_add(&val->segs_out, row->val.segs_out);
	// a row without chrono stats (taken before the tick rate was known) marks
	// the sum (a byte: no atomic; two closes racing here may keep either mark)
	val->flags &= row->val.flags;
}

/* Add to the map user space is not draining. */
static __always_inline void add_to_slot(const struct conn_row *row)
{
	__u32 zero = 0, *slot = bpf_map_lookup_elem(&bw_slot, &zero);

	add_to(slot && *slot ? (void *)&conns_b : (void *)&conns_a, row);
}

/* A session's state changes: follow it; at its close take its last bytes. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_state, struct sock *sk, int oldstate, int newstate)
{
	struct sock_state *s;
	struct conn_row row = {};
	struct taken t = {};
	struct payload p;

	// the tcp_sock view: TCP's counters are plain loads beyond struct sock
	sk = (struct sock *)bpf_skc_to_tcp_sock(sk);
	if (!sk || !is_session_change(sk, oldstate, newstate))
		return 0;
	s = track(sk, oldstate, newstate);
	if (newstate != BPF_TCP_CLOSE || !s || !pid_wanted(s->pid))
		return 0;
	// a close before the interval pass measured the tick rate measures it
	if (!tick_hz)
		measure_tick();
	read_payload((const struct tcp_sock *)sk, &p, READ_LOCKED);
	if (fill_row(sk, s, &p, &row, true, &t))
		add_to_slot(&row);
	return 0;
}

/* A socket is destroyed: its state by address goes, unless the sessions
 * probe's record still waits on it (its own tp_destroy forgets it then). */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tp_destroy, struct sock *sk)
{
	struct sock_state *s;

	sk = (struct sock *)bpf_skc_to_tcp_sock(sk);
	if (!sk)
		return 0;
	s = state_of(sk, NULL);
	if (!s || !s->pending)
		forget_state(sk);
	return 0;
}

/* One socket of one process's files in a pass, read `how`; one stamped
 * before `quiet_before_us` (0: none) is passed over. */
static __always_inline int pass_file(struct bpf_iter__task_file *ctx, bool commit,
				     __u64 quiet_before_us, enum reading how)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct conn_row row = {};
	struct taken t = {};
	struct sock_state *s;
	struct socket *sock;
	struct tcp_sock *tp;
	struct payload p;
	struct sock *sk;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (quiet_since(sock, quiet_before_us))
		return 0;
	tp = connection_of(sock);
	if (!tp) {
		// a closed socket still held: its owner is who holds it
		if ((sk = closed_of(sock)))
			claim(state_of(sk, NULL), task);
		return 0;
	}
	s = state_in_pass(tp, task);
	if (!s || !pid_wanted(s->pid))
		return 0;
	if (!read_payload(tp, &p, how) ||
	    !fill_row((struct sock *)tp, s, &p, &row, commit, &t))
		return 0;
	// a row the seq_file could not take is shown again: give its counts back
	if (bpf_seq_write(ctx->meta->seq, &row, sizeof(row)) && commit)
		give_back(s, &row.val, &t);
	return 0;
}

/* A pass that takes what it reports. */
static __always_inline int committed_pass(struct bpf_iter__task_file *ctx, bool every_socket,
					  enum reading how)
{
	// the first call of a new iterator: a new pass
	if (ctx->meta->seq_num == 0)
		pass_begins();
	// quiet since the pass before the last one read it (a pass of margin for
	// a stamp set just before a counter moved): nothing to report
	return pass_file(ctx, true, every_socket ? 0 : pass_start_us[2], how);
}

SEC("iter/task_file")
int pass_conns(struct bpf_iter__task_file *ctx)
{
	return committed_pass(ctx, false, READ_NEVER_HIGH);
}

/* Every held socket, quiet or not (user space runs it every tenth
 * interval): a socket that came into a file table already quiet
 * (accepted long after its last segment, received over SCM_RIGHTS) is not
 * one a pass has read, so the quiet test alone would leave its owner
 * unclaimed and its bytes until its close. */
SEC("iter/task_file")
int pass_all(struct bpf_iter__task_file *ctx)
{
	return committed_pass(ctx, true, READ_NEVER_HIGH);
}

/* The window's last pass: every held socket, and what a pass holds back
 * while TCP is at work on a socket (see read_payload) has no next reading
 * in the window to count at, so read it never low instead. */
SEC("iter/task_file")
int pass_last(struct bpf_iter__task_file *ctx)
{
	return committed_pass(ctx, true, READ_NEVER_LOW);
}

SEC("iter/task_file")
int peek_conns(struct bpf_iter__task_file *ctx)
{
	return pass_file(ctx, false, pass_start_us[1], READ_NEVER_HIGH);
}

char LICENSE[] SEC("license") = "GPL";
