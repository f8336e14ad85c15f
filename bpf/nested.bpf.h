/* SPDX-License-Identifier: GPL-2.0 */
/* Runs the kernel skips. A tracing program's run that would nest in its own
 * on one CPU (a softirq's state change interrupting a process's) is not run:
 * the kernel only counts it, in the program's recursion_misses. A second
 * copy of the program (named NAME_nested, attached beside it) catches it:
 * the first marks its CPU's slot while it runs, and the copy acts only while
 * the mark is set, counting each run it caught (STAT_NESTED_CAUGHT; user
 * space subtracts these from the misses). The copy's own skipped runs are
 * those the first ran itself. */
#ifndef NETTRAIL_NESTED_BPF_H
#define NETTRAIL_NESTED_BPF_H

#include "common.bpf.h"

/* One slot per guarded program of an object. */
enum nested_slot {
	NESTED_STATE = 0,   /* tp_state */
	NESTED_DESTROY = 1, /* tp_destroy */
	NESTED_SLOTS = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NESTED_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} running SEC(".maps");

/* The first program's mark for `slot` on this CPU (set while it runs). */
static __always_inline __u32 *running_mark(__u32 slot)
{
	return bpf_map_lookup_elem(&running, &slot);
}

static __always_inline void mark_running(__u32 *mark, __u32 on)
{
	if (mark)
		*mark = on;
}

/* In the copy: true if the first program is mid-run on this CPU, so the
 * kernel skipped its run for this event (counted as caught). */
static __always_inline bool skipped_by_kernel(__u32 slot)
{
	__u32 *mark = running_mark(slot);

	if (!mark || !*mark)
		return false;
	stat_inc(STAT_NESTED_CAUGHT);
	return true;
}

/* tp_state and its copy, both calling `handler(sk, oldstate, newstate)`. */
#define STATE_CHANGE_PROGRAMS(handler)						\
SEC("tp_btf/inet_sock_set_state")						\
int BPF_PROG(tp_state, struct sock *sk, int oldstate, int newstate)		\
{										\
	__u32 *mark = running_mark(NESTED_STATE);				\
										\
	mark_running(mark, 1);							\
	handler(sk, oldstate, newstate);					\
	mark_running(mark, 0);							\
	return 0;								\
}										\
										\
SEC("tp_btf/inet_sock_set_state")						\
int BPF_PROG(tp_state_nested, struct sock *sk, int oldstate, int newstate)	\
{										\
	if (skipped_by_kernel(NESTED_STATE))					\
		handler(sk, oldstate, newstate);				\
	return 0;								\
}

#endif
