/* Prints the C layout of bpf/nettrail.h as JSON: offset and size of each
 * field, and each struct's size. test_events_mirror.py compares it with the
 * Python mirror in capture/events.py. */
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include "nettrail.h"

#define FIELD(s, f) printf("\"%s.%s\": [%zu, %zu],\n", #s, #f, offsetof(struct s, f), \
			   sizeof(((struct s *)0)->f))
#define SIZE(s) printf("\"%s\": [0, %zu],\n", #s, sizeof(struct s))

int main(void)
{
	printf("{\n");
	FIELD(conn_key, laddr); FIELD(conn_key, raddr); FIELD(conn_key, pid);
	FIELD(conn_key, netns); FIELD(conn_key, lport); FIELD(conn_key, rport);
	FIELD(conn_key, family);
	SIZE(conn_key);
	FIELD(conn_val, rx_bytes); FIELD(conn_val, tx_bytes); FIELD(conn_val, retrans_bytes);
	FIELD(conn_val, cgroup_id); FIELD(conn_val, srtt_us); FIELD(conn_val, nspid);
	FIELD(conn_val, side);
	FIELD(conn_val, comm);
	SIZE(conn_val);
	FIELD(conn_row, key); FIELD(conn_row, val);
	SIZE(conn_row);
	FIELD(session_event, ts_ns); FIELD(session_event, opened_ns);
	FIELD(session_event, tx_bytes); FIELD(session_event, rx_bytes);
	FIELD(session_event, cgroup_id); FIELD(session_event, laddr);
	FIELD(session_event, raddr); FIELD(session_event, pid); FIELD(session_event, netns);
	FIELD(session_event, retrans_segs); FIELD(session_event, srtt_us);
	FIELD(session_event, nspid);
	FIELD(session_event, lport); FIELD(session_event, rport); FIELD(session_event, family);
	FIELD(session_event, state); FIELD(session_event, side); FIELD(session_event, end);
	FIELD(session_event, comm);
	SIZE(session_event);
	FIELD(dns_event, start_ns); FIELD(dns_event, end_ns); FIELD(dns_event, cgroup_id);
	FIELD(dns_event, pid); FIELD(dns_event, ret); FIELD(dns_event, h_errno);
	FIELD(dns_event, function); FIELD(dns_event, naddrs); FIELD(dns_event, name_truncated);
	FIELD(dns_event, wire_queries); FIELD(dns_event, families); FIELD(dns_event, addrs);
	FIELD(dns_event, comm); FIELD(dns_event, host);
	SIZE(dns_event);
	FIELD(dns_lookup, start_ns); FIELD(dns_lookup, result_pp); FIELD(dns_lookup, herrno_p);
	FIELD(dns_lookup, inner_herrno_p); FIELD(dns_lookup, cgroup_id);
	FIELD(dns_lookup, inner_herrno); FIELD(dns_lookup, depth); FIELD(dns_lookup, pid);
	FIELD(dns_lookup, wire_queries); FIELD(dns_lookup, function);
	FIELD(dns_lookup, name_truncated); FIELD(dns_lookup, comm); FIELD(dns_lookup, host);
	SIZE(dns_lookup);
	FIELD(dns_exec_event, pid);
	SIZE(dns_exec_event);
	FIELD(dns_wire_key, sock_cookie); FIELD(dns_wire_key, id);
	SIZE(dns_wire_key);
	FIELD(dns_wire_query, start_ns); FIELD(dns_wire_query, call_start_ns);
	FIELD(dns_wire_query, cgroup_id); FIELD(dns_wire_query, pid);
	FIELD(dns_wire_query, family); FIELD(dns_wire_query, server_port);
	FIELD(dns_wire_query, server); FIELD(dns_wire_query, proto);
	FIELD(dns_wire_query, query_len); FIELD(dns_wire_query, comm);
	FIELD(dns_wire_query, query);
	SIZE(dns_wire_query);
	FIELD(dns_wire_event, q); FIELD(dns_wire_event, end_ns); FIELD(dns_wire_event, status);
	FIELD(dns_wire_event, answer_len); FIELD(dns_wire_event, answer);
	SIZE(dns_wire_event);
	printf("\"end\": [0, 0]\n}\n");
	return 0;
}
