/* SPDX-License-Identifier: GPL-2.0 */
/* Maps dns.bpf.c and dns_wire.bpf.c share (user space hands dns.bpf.o's to
 * dns_wire.bpf.o): the libc lookups in progress, where a query sent inside
 * one is counted, and the wire events' ring buffer, read with dns's own. */
#ifndef NETTRAIL_DNS_SHARED_BPF_H
#define NETTRAIL_DNS_SHARED_BPF_H

#include "common.bpf.h"

#define MAX_LOOKUPS 10240

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOOKUPS);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct dns_lookup);
} lookups SEC(".maps");

/* user space shrinks it to a page when wire-level DNS is off */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} wire_events SEC(".maps");

#endif /* NETTRAIL_DNS_SHARED_BPF_H */
