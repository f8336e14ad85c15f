/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the probes: pid filter, stats, socket endpoints. */
#ifndef NETTRAIL_COMMON_BPF_H
#define NETTRAIL_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "nettrail.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* Set before load: processes to trace (tgids); none means all. */
const volatile __u32 targ_pids[MAX_PIDS] = {};
const volatile __u32 targ_npids = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_inc(__u32 index)
{
	__u64 *count = bpf_map_lookup_elem(&stats, &index);

	if (count)
		__sync_fetch_and_add(count, 1);
}

static __always_inline bool pid_wanted(__u32 pid)
{
	if (!targ_npids)
		return true;
	for (int i = 0; i < MAX_PIDS; i++) {
		if (i >= targ_npids)
			break;
		if (targ_pids[i] == pid)
			return true;
	}
	return false;
}

/* Socket fields are read with CO-RE probe reads: these run on state changes
 * and once per socket per pass, never per packet, and the same code serves
 * every pointer kind (tracepoint argument, iterator, helper result). */

/* Only IPv4/IPv6 TCP sockets count. */
static __always_inline bool is_inet_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP;
}

/* Copy a socket's family, addresses and ports (host byte order). */
static __always_inline void read_endpoints(const struct sock *sk, __u16 *family, __u8 *laddr,
					   __u8 *raddr, __u16 *lport, __u16 *rport)
{
	const struct inet_sock *inet = (const struct inet_sock *)sk;

	*family = BPF_CORE_READ(sk, __sk_common.skc_family);
	// inet_sport survives inet_put_port() at close; skc_num does not
	*lport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	*rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (*family == AF_INET) {
		bpf_core_read(laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* The socket's network namespace, as its inode number. */
static __always_inline __u32 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

#endif /* NETTRAIL_COMMON_BPF_H */
