/* SPDX-License-Identifier: GPL-2.0 */
/* Maps dns.bpf.c and dns_wire.bpf.c share (user space hands dns.bpf.o's to
 * dns_wire.bpf.o): the libc lookups in progress, where a query sent inside
 * one is counted, the queries waiting for an answer (a libc lookup that
 * returns, or asks again elsewhere, gives up its own), who they count
 * against, and the wire events' ring buffer, read with dns's own. */
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

#define MAX_QUERIES 10240
/* One owner's share of the query table: a flood by one user (in as many
 * namespaces as it likes) or one root namespace leaves the rest to others. */
#define OWNER_QUERIES (MAX_QUERIES / 10)
#define MAX_OWNERS 1024

/* user space shrinks these to one entry when wire-level DNS is off */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_QUERIES);
	__type(key, struct dns_wire_key);
	__type(value, struct dns_wire_query);
} queries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_OWNERS);
	__type(key, struct dns_query_owner);
	__type(value, struct dns_owner_count);
} query_owners SEC(".maps");

static __always_inline struct dns_query_owner owner_of(const struct dns_wire_query *q)
{
	struct dns_query_owner owner = {.uid = q->uid, .netns = q->uid ? 0 : q->netns};

	return owner;
}

/* A pending query leaves the table: its owner's share is freed. */
static __always_inline void forget_query(const struct dns_wire_key *key,
					 const struct dns_wire_query *q)
{
	struct dns_query_owner owner = owner_of(q);
	struct dns_owner_count *count;

	if (bpf_map_delete_elem(&queries, key))
		return; /* another CPU's answer took it first */
	count = bpf_map_lookup_elem(&query_owners, &owner);
	if (count && count->tracked)
		__sync_fetch_and_add(&count->tracked, -1);
}

/* An event for a query, its answer left empty; NULL (counted) if the ring is full. */
static __always_inline struct dns_wire_event *wire_event(const struct dns_wire_query *q,
							 __u8 status)
{
	struct dns_wire_event *e = bpf_ringbuf_reserve(&wire_events, sizeof(*e), 0);

	if (!e) {
		stat_inc(STAT_RINGBUF_FULL);
		return NULL;
	}
	__builtin_memcpy(&e->q, q, sizeof(*q));
	e->end_ns = bpf_ktime_get_boot_ns();
	e->status = status;
	e->answer_len = 0;
	return e;
}

/* The libc lookup stopped waiting for the queries it sent on its latest
 * socket (it asked elsewhere, or returned): each still pending is given up,
 * with the time it was waited for. */
static __always_inline void give_up_queries(struct dns_lookup *l)
{
	struct dns_wire_key key = {.sock_cookie = l->wire_sock};
	struct dns_wire_query *q;
	struct dns_wire_event *e;

	for (int i = 0; i < WIRE_IDS; i++) {
		if (i >= l->wire_nids)
			break;
		key.id = l->wire_ids[i];
		q = bpf_map_lookup_elem(&queries, &key);
		if (!q || q->call_start_ns != l->start_ns)
			continue;
		e = wire_event(q, WIRE_GIVEN_UP);
		if (e)
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		forget_query(&key, q);
	}
	l->wire_nids = 0;
}

#endif /* NETTRAIL_DNS_SHARED_BPF_H */
