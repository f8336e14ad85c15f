/* SPDX-License-Identifier: GPL-2.0 */
/* Structs shared by the BPF probes and their Python mirror (capture/events.py).
 * Fixed-width fields only; keep both sides in step and bump docs/format.md. */
#ifndef NETTRAIL_H
#define NETTRAIL_H

#define COMM_LEN 16
#define HOST_LEN 256
#define MAX_ADDRS 8
#define MAX_PIDS 16

/* Counters every probe keeps in its `stats` array map. */
enum stat_index {
	STAT_RINGBUF_FULL = 0, /* a ring buffer had no room: an event was dropped */
	STAT_MAP_FULL = 1,     /* a hash map refused an insert: data was not tracked */
	STAT_QUERY_TABLE_FULL = 2, /* dns_wire: the pending-query table was full */
	STAT_QUERY_QUOTA = 3,  /* dns_wire: the sender's owner had its share of the table */
	STAT_MAX = 4,
};

/* Which end of a connection this socket is. */
enum conn_side {
	SIDE_UNKNOWN = 0,
	SIDE_CLIENT = 1, /* it connected */
	SIDE_SERVER = 2, /* it was accepted */
};

/* How a session ended (docs/format.md `end`). */
enum session_end {
	END_NONE = 0,    /* still open */
	END_NORMAL = 1,  /* FIN */
	END_RESET = 2,   /* RST sent or received after the handshake */
	END_REFUSED = 3, /* the connect was answered with RST */
	END_TIMEOUT = 4, /* the SYN was never answered, or the connection timed out */
};

/* bandwidth: key and value of the per-interval connection maps. */
struct conn_key {
	__u8 laddr[16];
	__u8 raddr[16];
	__u32 pid;
	__u32 netns;      /* the socket's network namespace (inode number) */
	__u16 lport;
	__u16 rport;
	__u16 family;
	__u16 pad;
};

struct conn_val {
	__u64 rx_bytes;      /* payload received (bytes_received, less the FIN) */
	__u64 tx_bytes;      /* payload acked by the peer (bytes_acked, less SYN and FIN) */
	__u64 retrans_bytes; /* payload retransmitted (bytes_retrans) */
	__u64 cgroup_id;     /* the owner's cgroup v2 id */
	__u32 srtt_us;       /* smoothed RTT when read */
	__u32 nspid;         /* the owner's pid in its own pid namespace */
	__u8 side;           /* enum conn_side */
	__u8 flags;          /* enum conn_flags: which of the fields below are known */
	__u8 pad[6];
	char comm[COMM_LEN]; /* the owner's thread-group leader's name */
	/* the kernel's own per-socket counters (tcp_info's), changes in the interval */
	__u64 busy_us;          /* sending (tcpi_busy_time: includes the two below) */
	__u64 rwnd_limited_us;  /* with data to send, stopped by the peer's window */
	__u64 sndbuf_limited_us; /* stopped by our own send buffer */
	__u64 delivery_bytes_per_s; /* tcpi_delivery_rate when read, 0 if none */
	__u32 retrans_segs;     /* segments retransmitted (total_retrans) */
	__u32 lost_segs;        /* segments marked lost (tp->lost) */
	__u32 rto_count;        /* retransmission timeouts (total_rto, 6.7+) */
	__u32 segs_out;         /* segments sent, retransmissions included (segs_out) */
};

/* conn_val.flags */
enum conn_flags {
	CONN_CHRONO = 1, /* busy/rwnd/sndbuf times taken (the tick rate was known) */
	CONN_RTO = 2,    /* rto_count known (the kernel has total_rto) */
};

/* bandwidth: one connection's counts as the per-interval pass writes them. */
struct conn_row {
	struct conn_key key;
	struct conn_val val;
};

/* sessions: one record per TCP session, from the ring buffer (closed) or
 * from the pass over every process's sockets at window end (still open). */
enum session_state {
	SESSION_CLOSED = 1,
	SESSION_OPEN = 2,
};

struct session_event {
	__u64 ts_ns;      /* close time, or pass time for open sessions */
	__u64 opened_ns;  /* 0: opened before the window */
	__u64 tx_bytes;   /* payload acked by the peer over the session's life */
	__u64 rx_bytes;   /* payload received over the session's life */
	__u64 cgroup_id;  /* the owner's cgroup v2 id, 0 if unknown */
	__u8 laddr[16];
	__u8 raddr[16];
	__u32 pid;        /* 0: no process known to hold the socket */
	__u32 netns;
	__u32 retrans_segs;
	__u32 srtt_us;
	__u32 nspid;      /* the owner's pid in its own pid namespace */
	__u16 lport;
	__u16 rport;
	__u16 family;
	__u8 state;       /* enum session_state */
	__u8 side;        /* enum conn_side */
	__u8 end;         /* enum session_end */
	__u8 handshake;   /* 1: connect_us and syn_retrans were taken at its handshake */
	__u8 pad[2];
	char comm[COMM_LEN];
	__u32 connect_us;  /* client: SYN sent to established; server: its handshake's RTT
			    * sample (our SYN-ACK to the ACK that completed it) */
	__u32 syn_retrans; /* SYNs (client) or SYN-ACKs (server) sent again */
	__u32 min_rtt_us;  /* the kernel's windowed minimum RTT (tcpi_min_rtt) */
	__u32 pad2;
};

/* listeners: one listening TCP socket as a process's files hold it, read
 * by the interval pass. */
struct listener_row {
	__u64 cgroup_id;        /* the holder's cgroup v2 id */
	__u64 ino;              /* the socket's inode (ss's `ino`): one per listener */
	__u8 laddr[16];
	__u32 pid;              /* the process holding it (tgid) */
	__u32 nspid;            /* that pid in its own pid namespace */
	__u32 netns;
	__u32 ack_backlog;      /* connections waiting in the accept queue (sk_ack_backlog) */
	__u32 max_ack_backlog;  /* the queue's limit: listen()'s backlog, capped by somaxconn */
	__u32 drops;            /* SYNs and ACKs the listener dropped so far (sk_drops) */
	__u32 syn_queue;        /* handshakes not yet completed (icsk_accept_queue.qlen) */
	__u16 lport;
	__u16 family;
	char comm[COMM_LEN];    /* the holder's thread-group leader's name */
};

/* dns: one record per libc lookup. */
enum dns_function {
	FN_GETADDRINFO = 1,
	FN_GETHOSTBYNAME = 2,
	FN_GETHOSTBYNAME2 = 3,
	FN_GETHOSTBYNAME_R = 4,
	FN_GETHOSTBYNAME2_R = 5,
};

struct dns_event {
	__u64 start_ns;
	__u64 end_ns;
	__u64 cgroup_id;
	__u32 pid;
	__s32 ret;        /* getaddrinfo: 0 or EAI_*; _r: 0 or errno; else 0/1 for ptr */
	__s32 h_errno;    /* gethostbyname*: h_errno of the lookup, 0 if none */
	__u8 function;    /* enum dns_function */
	__u8 naddrs;
	__u8 name_truncated;
	__u8 pad;
	__u32 wire_queries; /* DNS queries this call sent (counted by dns_wire) */
	__u16 host_len;     /* bytes of host sent, its NUL included: the event ends there */
	__u16 families[MAX_ADDRS];
	__u8 addrs[MAX_ADDRS][16];
	char comm[COMM_LEN];
	char host[HOST_LEN];
};

#define WIRE_IDS 4 /* queries of one libc lookup on one socket, followed */

/* dns: a lookup in progress, keyed by thread id; user space reads what is
 * left at window end as pending lookups. dns_wire counts the queries a
 * lookup sends in `wire_queries`. */
struct dns_lookup {
	__u64 start_ns;
	__u64 result_pp;      /* struct addrinfo ** or struct hostent ** */
	__u64 herrno_p;       /* int *h_errnop of a _r call */
	__u64 inner_herrno_p; /* h_errnop of a lookup made inside this one */
	__u64 cgroup_id;
	__s32 inner_herrno;
	__u32 depth;          /* nested lookups still running */
	__u32 pid;
	__u32 wire_queries;
	__u8 function;
	__u8 name_truncated;
	__u16 host_len;       /* bytes of host, its NUL included */
	__u8 pad[4];
	__u64 wire_sock;      /* socket cookie of the latest queries it sent */
	__u16 wire_ids[WIRE_IDS]; /* their transaction ids (glibc: A and AAAA) */
	__u32 wire_nids;
	__u32 pad2;
	char comm[COMM_LEN];
	char host[HOST_LEN];
};

/* dns: a process that started a new program (user space looks for new
 * libcs and static programs in it). */
struct dns_exec_event {
	__u32 pid;
};

/* dns_wire: DNS over UDP/TCP port 53 as a socket sends and receives it. */
#define DNS_MSG_LEN 512   /* bytes of a DNS message kept */
#define DNS_QUERY_LEN 320 /* bytes of a query kept while it waits */

enum dns_wire_status {
	WIRE_ANSWERED = 1,
	WIRE_RESENT = 2,  /* the same query (id) was sent again: no answer came */
	WIRE_GIVEN_UP = 3, /* its libc lookup asked on another socket or returned */
};

/* dns_wire: who a pending query counts against: its sender's uid, and for
 * uid 0 also its network namespace (any user can make namespaces, but not
 * uids) */
struct dns_query_owner {
	__u32 uid;
	__u32 netns;      /* inode; 0 for uids other than 0 */
};

struct dns_owner_count {
	__u32 tracked;    /* its queries in the pending table now */
	__u32 last_netns; /* the network namespace of its latest query */
	__u64 refused;    /* its queries not followed: its share was used up */
};

/* key of a query waiting for its answer */
struct dns_wire_key {
	__u64 sock_cookie;
	__u16 id;         /* the DNS transaction id */
	__u16 pad[3];
};

struct dns_wire_query {
	__u64 start_ns;
	__u64 call_start_ns; /* start_ns of the libc lookup that sent it, or 0 */
	__u64 cgroup_id;
	__u32 pid;
	__u16 family;
	__u16 server_port;
	__u32 uid;        /* of the sending task (init user namespace) */
	__u32 netns;      /* inode of the sender's network namespace */
	__u8 server[16];
	__u8 proto;       /* IPPROTO_UDP / IPPROTO_TCP */
	__u8 pad;
	__u16 query_len;  /* bytes of `query` (the message, from its header) */
	char comm[COMM_LEN];
	__u8 query[DNS_QUERY_LEN];
};

struct dns_wire_event {
	struct dns_wire_query q;
	__u64 end_ns;
	__u8 status;      /* enum dns_wire_status */
	__u8 pad;
	__u16 answer_len; /* bytes of `answer` */
	__u32 pad2;
	__u8 answer[DNS_MSG_LEN];
};

/* udp: one flow of one socket, the key of the flow maps. */
struct udp_flow_key {
	__u64 sock_cookie;
	__u8 laddr[16];   /* as the packet has them (an unconnected socket has many) */
	__u8 raddr[16];
	__u16 lport;      /* host byte order */
	__u16 rport;
	__u16 family;
	__u16 pad;
};

/* udp: a flow's counts since user space last took the map. */
struct udp_flow {
	__u64 rx_bytes;   /* UDP payload bytes */
	__u64 tx_bytes;
	__u64 rx_datagrams;
	__u64 tx_datagrams;
	__u64 first_ns;   /* boot clock, first and last packet */
	__u64 last_ns;
};

/* udp: who owns a socket: the task that sent on it, or a process holding it. */
struct udp_owner {
	__u64 cgroup_id;
	__u32 pid;
	__u32 nspid;
	__u32 netns;      /* inode of the socket's (or sender's) network namespace */
	__u32 pad;
	char comm[COMM_LEN];
};

/* udp: the pass over open files, one row per UDP socket a process holds. */
struct udp_sock_row {
	__u64 sock_cookie; /* 0: none made yet (file_sockets_untrusted, bpf/common.bpf.h) */
	__u64 drops;      /* the socket's drops so far (sk_drops and its per-node counters) */
	__u64 ino;        /* the socket's inode number: its drops' baseline, cookie or not */
	struct udp_owner owner;
};

/* drops: who talked to whom in a packet the kernel dropped, and why (the
 * key of the per-reason counts; addresses and ports zero where not read). */
struct drop_key {
	__u8 saddr[16];   /* the packet's source, as its IP header says */
	__u8 daddr[16];
	__u32 netns;      /* where it was dropped: its socket's, else its device's */
	__u32 reason;     /* enum skb_drop_reason: named from the running kernel's BTF */
	__u16 sport;      /* TCP and UDP only */
	__u16 dport;
	__u16 family;     /* AF_INET or AF_INET6 */
	__u8 proto;       /* the IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6) */
	__u8 pad;
};

/* drops: counts of a key in the interval (user space takes them). */
struct drop_val {
	__u64 packets;
	__u64 bytes;      /* skb->len when dropped */
};

#endif /* NETTRAIL_H */
