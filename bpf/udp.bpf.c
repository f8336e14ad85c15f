// SPDX-License-Identifier: GPL-2.0
/* udp: UDP payload bytes and datagrams per (socket, flow), for `--probes
 * +udp`. The kernel counts nothing per UDP socket but drops, so this runs per
 * packet: cgroup_skb programs on the cgroup v2 root (as dns_wire) see every
 * datagram every socket sends or receives, in every network namespace. Each
 * adds to one hash entry; user space takes the map once per interval. A
 * socket's owner is the task that first sends on it; for a socket that only
 * receives (the softirq runs the ingress program, not its owner) the pass
 * over open files (iter/task_file) names the process holding it, and reads
 * its drop count. */
#include "packet.bpf.h"

EVENT_TYPE(udp_flow_key);
EVENT_TYPE(udp_flow);
EVENT_TYPE(udp_sock_row);

#define MAX_FLOWS 65536
#define MAX_OWNERS 65536
#define UDP_HEADER_LEN 8

struct flow_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FLOWS);
	// entries live one interval; a late add to a taken one is lost, never misplaced
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct udp_flow_key);
	__type(value, struct udp_flow);
};

/* Two maps: the programs add to one while user space takes the other. */
struct flow_map flows_a SEC(".maps");
struct flow_map flows_b SEC(".maps");

/* Which map the programs add to: 0 = flows_a, 1 = flows_b. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} udp_slot SEC(".maps");

/* socket cookie -> owner, taken at the first send (least recently used go) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_OWNERS);
	__type(key, __u64);
	__type(value, struct udp_owner);
} udp_owners SEC(".maps");

static __always_inline void fill_owner(struct udp_owner *o, struct task_struct *task,
				       __u32 netns)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	o->pid = BPF_CORE_READ(task, tgid);
	o->nspid = ns_pid(leader);
	o->netns = netns;
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_core_read_str(o->comm, sizeof(o->comm), &leader->comm);
}

/* The sender owns a socket it is the first seen to send on. */
static __always_inline bool note_sender(__u64 cookie)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct udp_owner o = {};

	if (!pid_wanted(task->tgid))
		return false;
	if (bpf_map_lookup_elem(&udp_owners, &cookie))
		return true;
	fill_owner(&o, task, BPF_CORE_READ(task, nsproxy, net_ns, ns.inum));
	bpf_map_update_elem(&udp_owners, &cookie, &o, BPF_NOEXIST);
	return true;
}

static __always_inline struct udp_flow *flow_of(const struct udp_flow_key *key, __u64 now)
{
	__u32 zero = 0, *slot = bpf_map_lookup_elem(&udp_slot, &zero);
	void *flows = slot && *slot ? (void *)&flows_b : (void *)&flows_a;
	struct udp_flow *f = bpf_map_lookup_elem(flows, key), fresh = {};

	if (f)
		return f;
	fresh.first_ns = now;
	bpf_map_update_elem(flows, key, &fresh, BPF_NOEXIST);
	f = bpf_map_lookup_elem(flows, key);
	if (!f)
		stat_inc(STAT_MAP_FULL);
	return f;
}

static __always_inline int count(struct __sk_buff *skb, bool egress)
{
	struct bpf_sock *sk = skb->sk;
	struct udp_flow_key key = {};
	struct packet p = {};
	struct udp_flow *f;
	__u32 l4_off = 0;
	__u16 ports[2];
	__u64 bytes, datagrams, now;

	// other sockets are let go after two loads
	if (!sk)
		return CGROUP_SKB_PASS;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return CGROUP_SKB_PASS;
	if (parse_ip(skb, &p, &l4_off) || p.proto != IPPROTO_UDP ||
	    bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) ||
	    skb->len < l4_off + UDP_HEADER_LEN)
		return CGROUP_SKB_PASS;
	key.sock_cookie = bpf_get_socket_cookie(skb);
	if (egress && !note_sender(key.sock_cookie))
		return CGROUP_SKB_PASS;
	key.family = p.family;
	if (egress) {
		__builtin_memcpy(key.laddr, p.saddr, 16);
		__builtin_memcpy(key.raddr, p.daddr, 16);
		key.lport = bpf_ntohs(ports[0]);
		key.rport = bpf_ntohs(ports[1]);
	} else {
		__builtin_memcpy(key.laddr, p.daddr, 16);
		__builtin_memcpy(key.raddr, p.saddr, 16);
		key.lport = bpf_ntohs(ports[1]);
		key.rport = bpf_ntohs(ports[0]);
	}
	now = bpf_ktime_get_boot_ns();
	f = flow_of(&key, now);
	if (!f)
		return CGROUP_SKB_PASS;
	// a GSO/GRO packet is several datagrams behind one header
	datagrams = skb->gso_segs ? skb->gso_segs : 1;
	bytes = skb->len - l4_off - UDP_HEADER_LEN;
	if (egress) {
		__sync_fetch_and_add(&f->tx_bytes, bytes);
		__sync_fetch_and_add(&f->tx_datagrams, datagrams);
	} else {
		__sync_fetch_and_add(&f->rx_bytes, bytes);
		__sync_fetch_and_add(&f->rx_datagrams, datagrams);
	}
	f->last_ns = now;
	return CGROUP_SKB_PASS;
}

SEC("cgroup_skb/egress")
int udp_egress(struct __sk_buff *skb)
{
	return count(skb, true);
}

SEC("cgroup_skb/ingress")
int udp_ingress(struct __sk_buff *skb)
{
	return count(skb, false);
}

/* A socket's drops so far: sk_drops, plus (6.18+) the per-node counters
 * UDP adds its drops to. */
static __always_inline __u64 drops_of(const struct sock *sk)
{
	__u64 drops = (__u32)sk->sk_drops.counter;
	struct numa_drop_counters *node;

	if (bpf_core_field_exists(sk->sk_drop_counters)) {
		node = sk->sk_drop_counters;
		if (node)
			drops += (__u32)node->drops0.counter + (__u32)node->drops1.counter;
	}
	return drops;
}

/* One pass over every process's open files: each UDP socket, its holder
 * (unless a sender owns it) and its drops. */
SEC("iter/task_file")
int udp_pass(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct udp_sock_row row = {};
	struct udp_owner *known;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	sk = file_sock(sock, IPPROTO_UDP);
	if (!sk)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	// no helper takes an untrusted socket: its cookie as made so far (none,
	// 0, if no datagram of it was seen: no flow to join, a drop baseline)
	row.sock_cookie = file_sockets_untrusted ? sk->__sk_common.skc_cookie.counter
						 : bpf_get_socket_cookie(sk);
	row.ino = file->f_inode->i_ino;
	row.drops = drops_of(sk);
	known = bpf_map_lookup_elem(&udp_owners, &row.sock_cookie);
	if (known)
		row.owner = *known;
	else
		fill_owner(&row.owner, task, netns_of(sk));
	if (!pid_wanted(row.owner.pid))
		return 0;
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
