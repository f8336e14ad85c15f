// SPDX-License-Identifier: GPL-2.0
/* The floor for the throughput benchmark: one empty program on each socket
 * tracepoint nettrail's bandwidth probe uses. Whatever any per-call probe costs
 * at least is what this costs. Built by bench/run.py, never shipped. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sock_send_length")
int BPF_PROG(empty_send, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(empty_recv, struct sock *sk, int ret, int flags)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
