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

/* Keeps a struct user space decodes in this object's BTF (a pointer in
 * .rodata, never read): tests/test_events_mirror.py checks the ctypes mirror
 * in capture/events.py against it, field by field. */
#define EVENT_TYPE(name) struct name *const volatile event_type_##name = 0

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

/* Built in (the second object of the probes that pass over files,
 * NAME.untrusted.bpf.o, the second hook set): for a kernel whose verifier
 * marks the socket a pass reaches through a file (the `sk` of
 * bpf_sock_from_file()) untrusted, which no helper takes. Its fields still
 * read as any (a faulting load reads 0); the TCP probes keep their
 * per-socket state by socket address (sock_state.bpf.h). An object of its
 * own: the read-only cast it needs is a kfunc (6.2+), which libbpf 1.1 cannot
 * leave unresolved without root. */
#ifdef FILE_SOCKETS_UNTRUSTED
#define file_sockets_untrusted true
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define rdonly_cast(obj, type) ((type *)bpf_rdonly_cast(obj, bpf_core_type_id_kernel(type)))
#else
#define file_sockets_untrusted false
#define rdonly_cast(obj, type) ((type *)0)
#endif

/* The sock of a socket reached through a file, if it is `protocol`'s. */
static __always_inline struct sock *file_sock(struct socket *sock, __u8 protocol)
{
	struct sock *sk;

	if (!sock || !(sk = sock->sk))
		return NULL;
	return BPF_CORE_READ_BITFIELD(sk, sk_protocol) == protocol ? sk : NULL;
}

/* Socket pointers here are BTF-typed (tp_btf arguments, iterator fields,
 * helper results): fields are plain CO-RE loads, no probe-read helper calls;
 * the pass runs these once per socket of every process. */

/* Only IPv4/IPv6 TCP sockets count. */
static __always_inline bool is_inet_tcp(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ_BITFIELD(sk, sk_protocol) == IPPROTO_TCP;
}

/* Copy a socket's family, addresses and ports (host byte order). */
static __always_inline void read_endpoints(const struct sock *sk, __u16 *family, __u8 *laddr,
					   __u8 *raddr, __u16 *lport, __u16 *rport)
{
	const struct inet_sock *inet = (const struct inet_sock *)sk;

	*family = sk->__sk_common.skc_family;
	// inet_sport survives inet_put_port() at close; skc_num does not
	*lport = bpf_ntohs(inet->inet_sport);
	*rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (*family == AF_INET) {
		__builtin_memcpy(laddr, &sk->__sk_common.skc_rcv_saddr, 4);
		__builtin_memcpy(raddr, &sk->__sk_common.skc_daddr, 4);
	} else {
		__builtin_memcpy(laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(raddr, &sk->__sk_common.skc_v6_daddr, 16);
	}
}

/* The socket's network namespace, as its inode number. */
static __always_inline __u32 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* A process's pid in its own (innermost) pid namespace: read here because
 * short-lived processes are gone from /proc before user space asks. */
static __always_inline __u32 ns_pid(struct task_struct *leader)
{
	struct pid *pid = BPF_CORE_READ(leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};

	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level]);
	return upid.nr;
}

#endif /* NETTRAIL_COMMON_BPF_H */
