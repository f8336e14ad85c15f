"""What a capture needs from this machine, each problem with its fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nettrail.capture.libbpf import BTF_KIND_ENUM, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF, KernelBtf
from nettrail.errors import PrivilegeError, ProbeError, UnsupportedSystem

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
CAPS = {"CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_SYS_PTRACE": 19,
        "CAP_SYS_ADMIN": CAP_SYS_ADMIN, "CAP_PERFMON": CAP_PERFMON, "CAP_BPF": CAP_BPF,
        "CAP_CHECKPOINT_RESTORE": 40}


@dataclass(frozen=True)
class CapNeed:
    """A capability a probe needs (any one of `caps`) and what for. Without a
    required one the probe does not start; without an optional one it runs
    and says what it misses. Measured as uid 65534 holding only these
    (tests/test_capabilities.py; README lists them)."""

    caps: tuple[str, ...]
    why: str
    required: bool = True

    def held(self, effective: int) -> bool:
        return any(effective & (1 << CAPS[cap]) for cap in self.caps)

    def text(self) -> str:
        return f"{' or '.join(self.caps)} ({self.why})"


# CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as the kernel allows
BPF_NEEDS = (CapNeed(("CAP_BPF", "CAP_SYS_ADMIN"), "load BPF programs and maps"),
             CapNeed(("CAP_PERFMON", "CAP_SYS_ADMIN"), "attach tracing programs, read "
                     "kernel memory"))
IDENTITY_NEED = CapNeed(("CAP_DAC_READ_SEARCH",), "the cgroup, hence container and "
                        "service, of processes gone before their /proc is read",
                        required=False)


def missing_caps(needs: tuple[CapNeed, ...]) -> tuple[list[CapNeed], list[CapNeed]]:
    """The required and the optional needs this process does not hold."""
    effective = effective_caps()
    missing = [n for n in needs if not n.held(effective)]
    return [n for n in missing if n.required], [n for n in missing if not n.required]


def effective_caps() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def privilege_problem() -> PrivilegeError | None:
    """No probe can load at all (each probe checks its own needs too)."""
    required, _ = missing_caps(BPF_NEEDS)
    if not required:
        return None
    who = "root without capabilities" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return PrivilegeError(f"nettrail needs root or {'+'.join(n.caps[0] for n in BPF_NEEDS)} "
                          f"to load probes (running as {who})",
                          "run it with sudo (README lists the capabilities per probe)")


def btf_problem() -> UnsupportedSystem | None:
    if VMLINUX_BTF.exists():
        return None
    return UnsupportedSystem(f"this kernel has no BTF ({VMLINUX_BTF} is missing)",
                             "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or later)")


def require_capture_ok() -> None:
    """Raise the first problem that stops any probe from loading."""
    for problem in (privilege_problem(), btf_problem()):
        if problem:
            raise problem


@dataclass(frozen=True)
class KernelNeed:
    """One thing the TCP probes need from the kernel, found in its BTF."""

    what: str   # as `nettrail check` names it
    kind: str   # struct / typedef / helper / member
    name: str   # BTF name: type, BPF_FUNC_* value, or struct.member
    why: str
    since: str  # upstream version that added it (for the message only)


TCP_NEEDS = (
    KernelNeed("iter/task_file", "struct", "bpf_iter__task_file",
               "one pass per interval over every process's open files, in every "
               "network namespace: owners and counters of every held socket", "5.8"),
    KernelNeed("bpf_sock_from_file", "helper", "BPF_FUNC_sock_from_file",
               "the socket behind an open file", "5.11"),
    KernelNeed("bpf_skc_to_tcp_sock", "helper", "BPF_FUNC_skc_to_tcp_sock",
               "the TCP socket and its counters", "5.9"),
    KernelNeed("bpf_get_current_task_btf", "helper", "BPF_FUNC_get_current_task_btf",
               "the owner of a socket at connect and close", "5.11"),
    KernelNeed("tp_btf/inet_sock_set_state", "typedef", "btf_trace_inet_sock_set_state",
               "opens, owners' closes, and each socket's last counters at its close", "5.5"),
    KernelNeed("tp_btf/tcp_destroy_sock", "typedef", "btf_trace_tcp_destroy_sock",
               "the owner of a session reset before its owner closed it", "4.15"),
    *(KernelNeed(f"tcp_sock.{m}", "member", f"tcp_sock.{m}", why, since)
      for m, why, since in (("bytes_received", "payload received", "4.1"),
                            ("bytes_acked", "payload the peer acknowledged", "4.1"),
                            ("bytes_retrans", "bytes retransmitted", "4.19"),
                            ("total_retrans", "segments retransmitted", "2.6"),
                            ("srtt_us", "smoothed RTT", "3.15"),
                            ("tcp_mstamp", "last segment handled: passes skip idle sockets",
                             "4.13"),
                            ("chrono_stat", "time busy, limited by the peer's window or "
                             "our send buffer", "4.10"),
                            ("lost", "segments marked lost", "4.10"),
                            ("rtt_min", "minimum RTT", "4.6"),
                            ("rate_delivered", "delivery rate", "4.9"))),
)

# What the TCP probes use where the kernel has it, and do without (a field
# of theirs is null) where it has not
TCP_OPTIONAL = (
    KernelNeed("tcp_sock.total_rto", "member", "tcp_sock.total_rto",
               "retransmission timeouts per connection (rto_timeouts)", "6.7"),
)


def kernel_has_uprobe_multi() -> bool:
    """uprobe_multi links (6.6+): the kernel's enum bpf_attach_type names
    BPF_TRACE_UPROBE_MULTI."""
    try:
        btf = KernelBtf()
    except ProbeError:
        return False
    try:
        return "BPF_TRACE_UPROBE_MULTI" in btf.names_in("bpf_attach_type", BTF_KIND_ENUM)
    finally:
        btf.close()


def btf_has(btf: KernelBtf) -> Callable[[KernelNeed], bool]:
    """Whether the running kernel's BTF has a need."""
    kinds = {"struct": BTF_KIND_STRUCT, "typedef": BTF_KIND_TYPEDEF}
    helpers = btf.names_in("bpf_func_id", BTF_KIND_ENUM)
    members: dict[str, set[str]] = {}

    def has(need: KernelNeed) -> bool:
        if need.kind == "helper":
            return need.name in helpers
        if need.kind == "member":
            struct, member = need.name.split(".")
            if struct not in members:
                members[struct] = btf.names_in(struct, BTF_KIND_STRUCT)
            return member in members[struct]
        return btf.has_type(need.name, kinds[need.kind])
    return has


def missing_tcp_needs(has: Callable[[KernelNeed], bool]) -> list[KernelNeed]:
    return [need for need in TCP_NEEDS if not has(need)]


def tcp_needs_problem(missing: list[KernelNeed]) -> UnsupportedSystem | None:
    """The one-line problem of a kernel that lacks what the TCP probes need."""
    if not missing:
        return None
    names = ", ".join(f"{n.what} ({n.since}+)" for n in missing)
    return UnsupportedSystem(f"this kernel's BTF lacks {names}",
                             "the bandwidth and sessions probes need Linux 5.11 or later "
                             "(Ubuntu 22.04, RHEL 9, Debian 12 and newer have it)")


def tcp_counter_problem() -> UnsupportedSystem | None:
    """Why the bandwidth and sessions probes cannot run here, or None."""
    try:
        btf = KernelBtf()
    except ProbeError as exc:
        return UnsupportedSystem(exc.problem, "use a kernel with BTF")
    try:
        return tcp_needs_problem(missing_tcp_needs(btf_has(btf)))
    finally:
        btf.close()
