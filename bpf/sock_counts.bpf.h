/* SPDX-License-Identifier: GPL-2.0 */
/* Per-socket counters in socket-local storage: written by the bandwidth
 * probe, read by the sessions probe (the map is shared by fd), whose owner
 * is the first process that did I/O on the socket. */
#ifndef NETTRAIL_SOCK_COUNTS_BPF_H
#define NETTRAIL_SOCK_COUNTS_BPF_H

struct sock_counts {
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u32 pid; /* the process these counts belong to */
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_counts);
} sock_counts SEC(".maps");

#endif /* NETTRAIL_SOCK_COUNTS_BPF_H */
