// SPDX-License-Identifier: GPL-2.0
/* dns_wire: DNS over UDP and TCP port 53 as sockets send and receive it, for
 * resolvers that bypass libc (Go, dig, Java, systemd-resolved upstream).
 * cgroup_skb programs on the cgroup v2 root see every socket of every process
 * in every network namespace, with no kprobes. A query waits per (socket,
 * transaction id) with its owner, the task sending it, until its answer
 * arrives; the messages themselves are parsed in user space. A query sent
 * inside a libc lookup of the same thread is counted in that lookup. */
#include "dns_shared.bpf.h"
#include "packet.bpf.h"

EVENT_TYPE(dns_wire_event);

#define DNS_PORT 53
#define DNS_HEADER_LEN 12
#define TCP_LENGTH_PREFIX 2 /* DNS over TCP: a 2-byte length before each message */

/* Room to build a query: too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_wire_query);
} scratch SEC(".maps");

/* A DNS message to or from port 53: where it starts and how long it is. */
static __always_inline int parse_dns(struct __sk_buff *skb, struct packet *p)
{
	__u32 l4_off = 0;
	__u16 ports[2];
	__u8 doff;

	if (parse_ip(skb, p, &l4_off) || bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)))
		return -1;
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
	if (p->proto == IPPROTO_UDP) {
		p->msg_off = l4_off + sizeof(struct udphdr);
	} else if (p->proto == IPPROTO_TCP) {
		// data offset: the high nibble of byte 12 of the TCP header
		if (bpf_skb_load_bytes(skb, l4_off + 12, &doff, 1))
			return -1;
		p->msg_off = l4_off + (doff >> 4) * 4 + TCP_LENGTH_PREFIX;
	} else {
		return -1;
	}
	if (skb->len < p->msg_off + DNS_HEADER_LEN)
		return -1;
	p->msg_len = skb->len - p->msg_off;
	return 0;
}

/* Most packets are not DNS: a socket connected elsewhere is let go at once. */
static __always_inline bool maybe_dns(struct __sk_buff *skb)
{
	__u32 remote_port = skb->remote_port; /* network order, in the high half */

	return !remote_port || remote_port == bpf_htonl(DNS_PORT);
}

static __always_inline void copy_message(struct __sk_buff *skb, const struct packet *p,
					 __u8 *dst, __u32 max_len, __u16 *len)
{
	__u64 n = p->msg_len;

	if (n > max_len)
		n = max_len;
	// two tests on one register, kept apart: merged into one range test,
	// older verifiers (6.1) lose both bounds
	asm volatile("" : "+r"(n));
	if (n < DNS_HEADER_LEN)
		return;
	asm volatile("" : "+r"(n));
	if (n > max_len)
		return;
	if (!bpf_skb_load_bytes(skb, p->msg_off, dst, n))
		*len = n;
}

static __always_inline void submit(const struct dns_wire_query *q, __u8 status,
				   struct __sk_buff *skb, const struct packet *answer)
{
	struct dns_wire_event *e = wire_event(q, status);

	if (!e)
		return;
	if (answer)
		copy_message(skb, answer, e->answer, DNS_MSG_LEN, &e->answer_len);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* The task sending the query owns it; a libc lookup it is inside counts it
 * (and gives up what it sent on another socket: it asks elsewhere now). */
static __always_inline int note_owner(struct dns_wire_query *q, const struct dns_wire_key *key)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 tid = ((__u64)task->tgid << 32) | (__u32)task->pid;
	struct dns_lookup *l;

	q->pid = task->tgid;
	if (!q->pid || !pid_wanted(q->pid))
		return -1;
	BPF_CORE_READ_STR_INTO(&q->comm, task, group_leader, comm);
	q->uid = BPF_CORE_READ(task, cred, uid.val);
	q->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	l = bpf_map_lookup_elem(&lookups, &tid);
	if (!l)
		return 0;
	__sync_fetch_and_add(&l->wire_queries, 1);
	q->call_start_ns = l->start_ns;
	if (l->wire_nids && l->wire_sock != key->sock_cookie)
		give_up_queries(l);
	l->wire_sock = key->sock_cookie;
	for (int i = 0; i < WIRE_IDS; i++) {
		if (i >= l->wire_nids) {
			l->wire_ids[i] = key->id;
			l->wire_nids = i + 1;
			break;
		}
		if (l->wire_ids[i] == key->id)
			break;
	}
	return 0;
}

/* A new query takes a place in the table if its owner has not used up its
 * share; a refused one is counted against the owner (and its netns). */
static __always_inline bool owner_admits(const struct dns_wire_query *q)
{
	struct dns_query_owner owner = owner_of(q);
	struct dns_owner_count fresh = {}, *count;

	count = bpf_map_lookup_elem(&query_owners, &owner);
	if (!count) {
		bpf_map_update_elem(&query_owners, &owner, &fresh, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&query_owners, &owner);
		if (!count) {
			stat_inc(STAT_QUERY_TABLE_FULL);
			return false;
		}
	}
	count->last_netns = q->netns;
	if (count->tracked >= OWNER_QUERIES) {
		__sync_fetch_and_add(&count->refused, 1);
		stat_inc(STAT_QUERY_QUOTA);
		return false;
	}
	__sync_fetch_and_add(&count->tracked, 1);
	return true;
}

static __always_inline void on_query(struct __sk_buff *skb, const struct packet *p,
				     struct dns_wire_key *key)
{
	__u32 zero = 0;
	struct dns_wire_query *q = bpf_map_lookup_elem(&scratch, &zero), *resent;
	struct dns_query_owner owner;
	struct dns_owner_count *count;

	if (!q)
		return;
	__builtin_memset(q, 0, sizeof(*q) - DNS_QUERY_LEN);
	if (note_owner(q, key))
		return;
	q->start_ns = bpf_ktime_get_boot_ns();
	q->cgroup_id = bpf_skb_cgroup_id(skb);
	q->family = p->family;
	q->server_port = p->dport;
	q->proto = p->proto;
	__builtin_memcpy(q->server, p->daddr, 16);
	copy_message(skb, p, q->query, DNS_QUERY_LEN, &q->query_len);
	// the same query again on the same socket: the first got no answer in time
	resent = bpf_map_lookup_elem(&queries, key);
	if (resent) {
		submit(resent, WIRE_RESENT, skb, NULL);
		// it keeps its place, counted against the owner it had
		q->uid = resent->uid;
		q->netns = resent->netns;
		if (bpf_map_update_elem(&queries, key, q, BPF_EXIST))
			forget_query(key, resent);
		return;
	}
	if (!owner_admits(q))
		return;
	if (bpf_map_update_elem(&queries, key, q, BPF_NOEXIST)) {
		stat_inc(STAT_QUERY_TABLE_FULL);
		owner = owner_of(q);
		count = bpf_map_lookup_elem(&query_owners, &owner);
		if (count && count->tracked)
			__sync_fetch_and_add(&count->tracked, -1);
	}
}

static __always_inline void on_answer(struct __sk_buff *skb, const struct packet *p,
				      struct dns_wire_key *key)
{
	struct dns_wire_query *q = bpf_map_lookup_elem(&queries, key);

	if (!q)
		return; /* asked before the window, or not by a process we trace */
	submit(q, WIRE_ANSWERED, skb, p);
	forget_query(key, q);
}

/* egress: queries (to port 53); ingress: answers (from port 53) */
static __always_inline int handle(struct __sk_buff *skb, bool egress)
{
	struct dns_wire_key key = {};
	struct packet p = {};

	if (!maybe_dns(skb) || parse_dns(skb, &p))
		return CGROUP_SKB_PASS;
	if ((egress ? p.dport : p.sport) != DNS_PORT)
		return CGROUP_SKB_PASS;
	if (bpf_skb_load_bytes(skb, p.msg_off, &key.id, sizeof(key.id)))
		return CGROUP_SKB_PASS;
	key.sock_cookie = bpf_get_socket_cookie(skb);
	if (egress)
		on_query(skb, &p, &key);
	else
		on_answer(skb, &p, &key);
	return CGROUP_SKB_PASS;
}

SEC("cgroup_skb/egress")
int wire_egress(struct __sk_buff *skb)
{
	return handle(skb, true);
}

SEC("cgroup_skb/ingress")
int wire_ingress(struct __sk_buff *skb)
{
	return handle(skb, false);
}

char LICENSE[] SEC("license") = "GPL";
