/* SPDX-License-Identifier: GPL-2.0 */
/* Packets as cgroup_skb programs see them (dns_wire, udp): the IP header
 * first, whichever direction. */
#ifndef NETTRAIL_PACKET_BPF_H
#define NETTRAIL_PACKET_BPF_H

#include "common.bpf.h"

#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_FRAG_OFFSET 0x1fff
#define CGROUP_SKB_PASS 1

/* Who talks to whom, and (dns_wire) where the DNS message is. */
struct packet {
	__u32 msg_off;
	__u32 msg_len;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The IP header: protocol, addresses, where the transport header starts. */
static __always_inline int parse_ip(struct __sk_buff *skb, struct packet *p, __u32 *l4_off)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) ||
		    (ip.frag_off & bpf_htons(IP_FRAG_OFFSET)))
			return -1;
		p->family = AF_INET;
		p->proto = ip.protocol;
		__builtin_memcpy(p->saddr, &ip.saddr, 4);
		__builtin_memcpy(p->daddr, &ip.daddr, 4);
		*l4_off = ip.ihl * 4;
		return 0;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		p->family = AF_INET6;
		p->proto = ip6.nexthdr; /* extension headers: not DNS we can read */
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
		*l4_off = sizeof(ip6);
		return 0;
	}
	return -1;
}

#endif /* NETTRAIL_PACKET_BPF_H */
