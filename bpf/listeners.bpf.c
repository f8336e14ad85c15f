// SPDX-License-Identifier: GPL-2.0
/* listeners: every listening TCP socket's accept queue, read once per
 * interval; no program per packet or per call.
 *
 * The pass_listeners iterator walks every process's open files (every
 * network namespace) and writes one row per listening socket it finds there:
 * how full its accept queue is, its limit, its SYN queue, and the kernel's
 * drop count of the socket (sk_drops, which tcp_listendrop() counts for every
 * SYN or handshake-completing ACK the listener drops, an accept-queue
 * overflow among them). A listener shared by several processes (pre-forked
 * workers) is written once per process: user space keeps one. */
#include "common.bpf.h"
/* ns_pid(): the owner's pid in its own pid namespace, as the TCP probes read it */
#include "sock_state.bpf.h"

EVENT_TYPE(listener_row);

SEC("iter/task_file")
int pass_listeners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task, *leader;
	struct listener_row row = {};
	struct file *file = ctx->file;
	struct socket *sock;
	struct tcp_sock *tp;
	struct sock *sk;

	if (!task || !file || !pid_wanted(task->tgid))
		return 0;
	sock = bpf_sock_from_file(file);
	tp = file_tcp_sock(sock);
	sk = (struct sock *)tp;
	if (!tp || !is_inet_tcp(sk) || sk->__sk_common.skc_state != BPF_TCP_LISTEN)
		return 0;
	row.ack_backlog = sk->sk_ack_backlog;
	row.max_ack_backlog = sk->sk_max_ack_backlog;
	row.drops = sk->sk_drops.counter;
	row.syn_queue = tp->inet_conn.icsk_accept_queue.qlen.counter;
	row.ino = file->f_inode->i_ino;
	row.netns = netns_of(sk);
	row.family = sk->__sk_common.skc_family;
	row.lport = sk->__sk_common.skc_num;
	if (row.family == AF_INET)
		__builtin_memcpy(row.laddr, &sk->__sk_common.skc_rcv_saddr, 4);
	else
		__builtin_memcpy(row.laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
	leader = task->group_leader;
	bpf_core_read_str(row.comm, sizeof(row.comm), &leader->comm);
	row.nspid = ns_pid(leader);
	row.cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	row.pid = task->tgid;
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
