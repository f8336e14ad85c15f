// SPDX-License-Identifier: GPL-2.0
/* dns: every name lookup through libc, with latency, outcome and addresses.
 * Entry uprobes note the lookup per thread; one uretprobe finishes it.
 * A lookup made inside another (glibc's gethostbyname calls
 * gethostbyname_r) is folded into the outer one, which keeps its h_errno.
 * Every exec is reported, so user space can probe libcs and static programs
 * that start during the window. */
#include "dns_shared.bpf.h"

EVENT_TYPE(dns_event);
EVENT_TYPE(dns_exec_event);

#define MAX_AI_WALK 24
#define SOCKADDR_IN_ADDR 4   /* offsetof(struct sockaddr_in, sin_addr) */
#define SOCKADDR_IN6_ADDR 8  /* offsetof(struct sockaddr_in6, sin6_addr) */

/* User-space argument registers beyond libbpf 1.1's PT_REGS_PARM5. */
#if defined(__TARGET_ARCH_x86)
#define USER_PARM6(ctx) ((ctx)->r9)
#define USER_PARM7(ctx) stack_arg((ctx)->sp, 1)
#elif defined(__TARGET_ARCH_arm64)
#define USER_PARM6(ctx) (((struct user_pt_regs *)(ctx))->regs[5])
#define USER_PARM7(ctx) (((struct user_pt_regs *)(ctx))->regs[6])
#else
#error "dns.bpf.c: add USER_PARM6/7 for this architecture"
#endif

/* Room to build a dns_lookup: too large for the BPF stack with an event. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_lookup);
} scratch SEC(".maps");

/* Room to build an event, sent as long as its name (bpf_ringbuf_output):
 * reserving the whole struct would cost a 256-byte name every lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_event);
} event_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} execs SEC(".maps");

/* glibc/musl struct addrinfo and struct hostent on LP64. */
struct user_addrinfo {
	int ai_flags;
	int ai_family;
	int ai_socktype;
	int ai_protocol;
	__u32 ai_addrlen;
	__u64 ai_addr;
	__u64 ai_canonname;
	__u64 ai_next;
};

struct user_hostent {
	__u64 h_name;
	__u64 h_aliases;
	int h_addrtype;
	int h_length;
	__u64 h_addr_list;
};

static __always_inline __u64 stack_arg(__u64 sp, int slot)
{
	__u64 val = 0;

	bpf_probe_read_user(&val, sizeof(val), (void *)(sp + 8 * slot));
	return val;
}

/* Copy the name; a name that fills the buffer is cut if more follows. */
static __always_inline void read_name(struct dns_lookup *l, const char *name)
{
	long len = bpf_probe_read_user_str(l->host, sizeof(l->host), name);
	char next = 0;

	l->host_len = len > 0 ? len : 0;
	if (len < HOST_LEN)
		return;
	bpf_probe_read_user(&next, 1, name + HOST_LEN - 1);
	l->name_truncated = next != 0;
}

static __always_inline int lookup_entry(__u8 function, const char *name, __u64 result_pp,
					__u64 herrno_p)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u32 pid = tid >> 32, zero = 0;
	struct dns_lookup *l = bpf_map_lookup_elem(&lookups, &tid);

	// inside another lookup of this thread: only remember its h_errno pointer
	if (l) {
		l->depth++;
		l->inner_herrno_p = herrno_p;
		return 0;
	}
	if (!name || !pid_wanted(pid))
		return 0;
	l = bpf_map_lookup_elem(&scratch, &zero);
	if (!l)
		return 0;
	__builtin_memset(l, 0, sizeof(*l) - HOST_LEN);
	l->start_ns = bpf_ktime_get_boot_ns();
	l->result_pp = result_pp;
	l->herrno_p = herrno_p;
	l->pid = pid;
	l->function = function;
	l->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(l->comm, sizeof(l->comm));
	read_name(l, name);
	if (bpf_map_update_elem(&lookups, &tid, l, BPF_ANY))
		stat_inc(STAT_MAP_FULL);
	return 0;
}

/* Addresses of a getaddrinfo result, one per address (first socktype only). */
static __always_inline void read_addrinfo(struct dns_event *e, __u64 ai_ptr)
{
	struct user_addrinfo ai;
	int socktype = -1;

	for (int i = 0; i < MAX_AI_WALK && ai_ptr && e->naddrs < MAX_ADDRS; i++) {
		if (bpf_probe_read_user(&ai, sizeof(ai), (void *)ai_ptr))
			break;
		ai_ptr = ai.ai_next;
		// the same address comes once per socket type: keep the first type's
		if (socktype < 0)
			socktype = ai.ai_socktype;
		if (ai.ai_socktype != socktype || !ai.ai_addr)
			continue;
		__u32 n = e->naddrs & (MAX_ADDRS - 1);
		if (ai.ai_family == AF_INET)
			bpf_probe_read_user(e->addrs[n], 4, (void *)(ai.ai_addr + SOCKADDR_IN_ADDR));
		else if (ai.ai_family == AF_INET6)
			bpf_probe_read_user(e->addrs[n], 16, (void *)(ai.ai_addr + SOCKADDR_IN6_ADDR));
		else
			continue;
		e->families[n] = ai.ai_family;
		e->naddrs++;
	}
}

/* Addresses of a struct hostent. */
static __always_inline void read_hostent(struct dns_event *e, __u64 hostent)
{
	struct user_hostent h;
	__u64 addr;

	if (!hostent || bpf_probe_read_user(&h, sizeof(h), (void *)hostent))
		return;
	for (int i = 0; i < MAX_ADDRS; i++) {
		if (bpf_probe_read_user(&addr, sizeof(addr), (void *)(h.h_addr_list + 8 * i)) || !addr)
			break;
		if (h.h_length == 16)
			bpf_probe_read_user(e->addrs[i], 16, (void *)addr);
		else
			bpf_probe_read_user(e->addrs[i], 4, (void *)addr);
		e->families[i] = h.h_addrtype;
		e->naddrs++;
	}
}

/* Fill the outcome: ret is 0 on success for every function. */
static __always_inline void read_outcome(struct dns_event *e, const struct dns_lookup *l,
					 long rc)
{
	__u64 hostent = 0;

	switch (l->function) {
	case FN_GETADDRINFO:
		e->ret = (int)rc;
		if (!e->ret && l->result_pp)
			read_addrinfo(e, stack_arg(l->result_pp, 0));
		return;
	case FN_GETHOSTBYNAME:
	case FN_GETHOSTBYNAME2:
		hostent = rc;
		e->ret = hostent ? 0 : -1;
		e->h_errno = l->inner_herrno;
		break;
	default: /* the _r variants */
		hostent = stack_arg(l->result_pp, 0);
		e->ret = (int)rc ? (int)rc : (hostent ? 0 : -1);
		bpf_probe_read_user(&e->h_errno, sizeof(e->h_errno), (void *)l->herrno_p);
		break;
	}
	read_hostent(e, hostent);
}

static __always_inline int lookup_return(long rc)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct dns_lookup *l = bpf_map_lookup_elem(&lookups, &tid);
	__u32 zero = 0, host_len;
	struct dns_event *e;

	if (!l)
		return 0;
	// an inner lookup returned: keep its h_errno for the outer one
	if (l->depth) {
		l->depth--;
		if (l->inner_herrno_p)
			bpf_probe_read_user(&l->inner_herrno, sizeof(l->inner_herrno),
					    (void *)l->inner_herrno_p);
		return 0;
	}
	// the queries it still waited for are waited for no more
	give_up_queries(l);
	e = bpf_map_lookup_elem(&event_scratch, &zero);
	if (!e) {
		bpf_map_delete_elem(&lookups, &tid);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e) - HOST_LEN - COMM_LEN);
	e->start_ns = l->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = l->cgroup_id;
	e->pid = l->pid;
	e->function = l->function;
	e->name_truncated = l->name_truncated;
	e->wire_queries = l->wire_queries;
	__builtin_memcpy(e->comm, l->comm, COMM_LEN);
	__builtin_memcpy(e->host, l->host, HOST_LEN);
	host_len = l->host_len < HOST_LEN ? l->host_len : HOST_LEN;
	e->host_len = host_len;
	read_outcome(e, l, rc);
	// the event ends with its name; no wakeup: user space drains on a timer,
	// sparing the traced task the cost
	if (bpf_ringbuf_output(&events, e, offsetof(struct dns_event, host) + host_len,
			       BPF_RB_NO_WAKEUP))
		stat_inc(STAT_RINGBUF_FULL);
	bpf_map_delete_elem(&lookups, &tid);
	return 0;
}

/* The arguments each function's entry needs; `function` is a constant in
 * the one-function programs and the attach cookie in the multi program. */
static __always_inline int entry_of(struct pt_regs *ctx, __u64 function)
{
	const char *name = (const char *)PT_REGS_PARM1(ctx);

	switch (function) {
	case FN_GETADDRINFO: /* getaddrinfo(node, service, hints, res) */
		return lookup_entry(FN_GETADDRINFO, name, PT_REGS_PARM4(ctx), 0);
	case FN_GETHOSTBYNAME:
	case FN_GETHOSTBYNAME2:
		return lookup_entry(function, name, 0, 0);
	case FN_GETHOSTBYNAME_R: /* (name, ret, buf, buflen, result, h_errnop) */
		return lookup_entry(FN_GETHOSTBYNAME_R, name, PT_REGS_PARM5(ctx), USER_PARM6(ctx));
	case FN_GETHOSTBYNAME2_R: /* (name, af, ret, buf, buflen, result, h_errnop) */
		return lookup_entry(FN_GETHOSTBYNAME2_R, name, USER_PARM6(ctx), USER_PARM7(ctx));
	}
	return 0;
}

/* uprobe_multi (6.6+): one link per file and direction for every function,
 * the cookie names the function. Detaching it costs one grace period, not
 * one per function. */
SEC("uprobe")
int BPF_KPROBE(lookup_entry_multi)
{
	return entry_of(ctx, bpf_get_attach_cookie(ctx));
}

SEC("uretprobe")
int BPF_KRETPROBE(lookup_exit_multi, long rc)
{
	return lookup_return(rc);
}

/* One uprobe per function (kernels before 6.6). */
SEC("uprobe")
int BPF_KPROBE(getaddrinfo_entry)
{
	return entry_of(ctx, FN_GETADDRINFO);
}

SEC("uprobe")
int BPF_KPROBE(gethostbyname_entry)
{
	return entry_of(ctx, FN_GETHOSTBYNAME);
}

SEC("uprobe")
int BPF_KPROBE(gethostbyname2_entry)
{
	return entry_of(ctx, FN_GETHOSTBYNAME2);
}

SEC("uprobe")
int BPF_KPROBE(gethostbyname_r_entry)
{
	return entry_of(ctx, FN_GETHOSTBYNAME_R);
}

SEC("uprobe")
int BPF_KPROBE(gethostbyname2_r_entry)
{
	return entry_of(ctx, FN_GETHOSTBYNAME2_R);
}

SEC("uretprobe")
int BPF_KRETPROBE(lookup_exit, long rc)
{
	return lookup_return(rc);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_watch, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct dns_exec_event *e;
	__u32 pid = task->tgid;

	if (!pid_wanted(pid))
		return 0;
	e = bpf_ringbuf_reserve(&execs, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_RINGBUF_FULL);
		return 0;
	}
	e->pid = pid;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
