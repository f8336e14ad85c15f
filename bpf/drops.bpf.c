// SPDX-License-Identifier: GPL-2.0
/* drops: every IP packet the kernel drops, counted by the reason it gives
 * (enum skb_drop_reason, 5.17+) and by who talked to whom.
 *
 * One program on the kfree_skb tracepoint, which the kernel runs only when
 * it drops a packet (a packet delivered or sent is freed through
 * consume_skb, which is not traced): a healthy path runs nothing. Counts
 * are kept per interval and (namespace, reason, endpoints); user space takes
 * them once per interval. */
#include "common.bpf.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_UDP 17
#define IP_FRAG_OFFSET 0x1fff
#define NO_HEADER 0xffff /* an skb's header offset before it is set */
#define DROP_KEYS 65536
#define UNKEPT_KEYS 4096
/* namespaces' inode numbers: the initial ones from 0xEFFFFFF0 up, the others
 * from PROC_DYNAMIC_FIRST (0xF0000000) */
#define MIN_NS_INUM 0xEFFFFFF0u

EVENT_TYPE(drop_key);
EVENT_TYPE(drop_val);

/* Per (netns, reason, endpoints) in the interval; allocated as used: most
 * hosts drop little. Two of each: the program adds to one while user space
 * takes the other (drop_slot), so the bounds hold per interval. */
struct drop_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DROP_KEYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct drop_key);
	__type(value, struct drop_val);
};
struct drop_map drops_a SEC(".maps");
struct drop_map drops_b SEC(".maps");

/* When the interval's `drops` is full: the same counts, endpoints left out. */
struct unkept_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UNKEPT_KEYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct drop_key);
	__type(value, struct drop_val);
};
struct unkept_map unkept_a SEC(".maps");
struct unkept_map unkept_b SEC(".maps");

/* Which maps the program adds to: 0 = the _a ones, 1 = the _b ones. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} drop_slot SEC(".maps");

/* The IP and transport headers, wherever the drop happened (read with
 * probe reads: the packet's bytes are not BTF-typed memory). */
static __always_inline void read_headers(struct sk_buff *skb, struct drop_key *key)
{
	unsigned char *head = skb->head;
	__u16 l3 = skb->network_header;
	__u32 l4 = 0, tail = skb->tail; // offsets from head: the linear part's end
	__u8 first = 0;

	if (l3 == NO_HEADER || bpf_probe_read_kernel(&first, 1, head + l3))
		return;
	if (key->family == AF_INET && first >> 4 == 4) {
		struct iphdr ip;

		// a truncated or malformed header gives no endpoints
		if (l3 + sizeof(ip) > tail || bpf_probe_read_kernel(&ip, sizeof(ip), head + l3) ||
		    ip.ihl < 5)
			return;
		key->proto = ip.protocol;
		__builtin_memcpy(key->saddr, &ip.saddr, 4);
		__builtin_memcpy(key->daddr, &ip.daddr, 4);
		// a fragment after the first carries no ports
		if (!(ip.frag_off & bpf_htons(IP_FRAG_OFFSET)))
			l4 = l3 + ip.ihl * 4;
	} else if (key->family == AF_INET6 && first >> 4 == 6) {
		struct ipv6hdr ip6;

		if (l3 + sizeof(ip6) > tail || bpf_probe_read_kernel(&ip6, sizeof(ip6), head + l3))
			return;
		key->proto = ip6.nexthdr; // extension headers: no ports read
		__builtin_memcpy(key->saddr, &ip6.saddr, 16);
		__builtin_memcpy(key->daddr, &ip6.daddr, 16);
		l4 = l3 + sizeof(ip6);
	}
	if (l4 && l4 + 4 <= tail && (key->proto == IPPROTO_TCP || key->proto == IPPROTO_UDP)) {
		__be16 ports[2];

		if (!bpf_probe_read_kernel(ports, sizeof(ports), head + l4)) {
			key->sport = bpf_ntohs(ports[0]);
			key->dport = bpf_ntohs(ports[1]);
		}
	}
}

/* Add one packet to its key's counts; false if the map is full. */
static __always_inline bool count_drop(void *map, struct drop_key *key, __u32 len)
{
	struct drop_val *val, first = {.packets = 1, .bytes = len};

	val = bpf_map_lookup_elem(map, key);
	if (!val) {
		// two CPUs may add the same key at once: the loser adds to the winner's
		if (!bpf_map_update_elem(map, key, &first, BPF_NOEXIST))
			return true;
		val = bpf_map_lookup_elem(map, key);
		if (!val)
			return false;
	}
	__sync_fetch_and_add(&val->packets, 1);
	__sync_fetch_and_add(&val->bytes, len);
	return true;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	__u16 protocol = bpf_ntohs(skb->protocol);
	struct drop_key key = {.reason = reason};
	__u32 zero = 0, *slot = bpf_map_lookup_elem(&drop_slot, &zero);
	bool b = slot && *slot;
	struct sock *sk = skb->sk;

	// IP packets only: not unix sockets', netlink's or other families' buffers
	if (protocol == ETH_P_IP)
		key.family = AF_INET;
	else if (protocol == ETH_P_IPV6)
		key.family = AF_INET6;
	else
		return 0;
	// the socket's namespace first; a queued skb's dev is overlaid by its
	// rbnode, so a number no namespace can have is left out (0: unknown)
	key.netns = sk ? netns_of(sk) : BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	if (key.netns < MIN_NS_INUM)
		key.netns = 0;
	read_headers(skb, &key);
	if (count_drop(b ? (void *)&drops_b : (void *)&drops_a, &key, skb->len))
		return 0;
	__builtin_memset(key.saddr, 0, sizeof(key.saddr));
	__builtin_memset(key.daddr, 0, sizeof(key.daddr));
	key.sport = key.dport = 0;
	if (!count_drop(b ? (void *)&unkept_b : (void *)&unkept_a, &key, skb->len))
		stat_inc(STAT_MAP_FULL);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
