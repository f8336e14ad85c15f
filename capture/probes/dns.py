"""dns probe: every libc name lookup, on every libc running processes map."""

from __future__ import annotations

import ctypes

import errno
import socket
from collections.abc import Callable

from nettrail.capture.clock import boot_ns
from nettrail.capture.events import DNS, MAX_ADDRS, DnsLookup, RecordContext, address, ms, text
from nettrail.capture.libbpf import BpfObject, map_items
from nettrail.capture.libcs import find_libcs
from nettrail.capture.loader import HookSet, Probe
from nettrail.errors import ProbeError

# libc function: its entry program (all share the return program)
PROGRAMS = {"getaddrinfo": "getaddrinfo_entry", "gethostbyname": "gethostbyname_entry",
             "gethostbyname2": "gethostbyname2_entry",
             "gethostbyname_r": "gethostbyname_r_entry",
             "gethostbyname2_r": "gethostbyname2_r_entry"}
RETURN_PROGRAM = "lookup_exit"
# enum lookup_function in bpf/nettrail.h
LOOKUP_FUNCTIONS = {1: "getaddrinfo", 2: "gethostbyname", 3: "gethostbyname2",
                    4: "gethostbyname_r", 5: "gethostbyname2_r"}
FN_GETADDRINFO = 1
EAI_NAMES = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
H_ERRNO_NAMES = {1: "HOST_NOT_FOUND", 2: "TRY_AGAIN", 3: "NO_RECOVERY", 4: "NO_DATA"}


def dns_error(function: int, ret: int, h_errno: int) -> str | None:
    """The failure's name: EAI_* for getaddrinfo, h_errno or errno for the others."""
    if ret == 0:
        return None
    if function == FN_GETADDRINFO:
        return EAI_NAMES.get(ret, f"EAI_{ret}")
    if h_errno in H_ERRNO_NAMES:
        return H_ERRNO_NAMES[h_errno]
    return errno.errorcode.get(ret, "UNKNOWN") if ret > 0 else "UNKNOWN"


def dns_records(blob: bytes, ctx: RecordContext) -> list[dict]:
    """Records from struct dns_event bytes."""
    out = []
    for start, end, pid, ret, h_errno, function, naddrs, _pad, *rest in DNS.iter_unpack(blob):
        families, (addrs, comm, host) = rest[:MAX_ADDRS], rest[MAX_ADDRS:]
        addresses: list[str] = []
        for i in range(min(naddrs, MAX_ADDRS)):
            addr = address(families[i], addrs[16 * i:16 * i + 16])
            if addr not in addresses:
                addresses.append(addr)
        out.append(lookup_record(ctx, start, pid, comm, host, function,
                                 latency_ms=ms(end - start), ok=ret == 0,
                                 error=dns_error(function, ret, h_errno), addresses=addresses))
    return out


def lookup_record(ctx: RecordContext, start_ns: int, pid: int, comm: bytes, name: bytes,
                  function: int, latency_ms: float, ok: bool, error: str | None,
                  addresses: list[str], pending: bool = False) -> dict:
    return {"kind": "lookup", "ts": ctx.clock.unix(start_ns), **ctx.identity(pid, text(comm)),
            "source": "libc", "name": text(name), "name_truncated": False, "qtype": None,
            "function": LOOKUP_FUNCTIONS.get(function, "?"), "server": None,
            "latency_ms": latency_ms, "ok": ok, "error": error, "addresses": addresses,
            "pending": pending, "resolved_by": None}


def pending_record(ctx: RecordContext, lookup: DnsLookup, now_ns: int) -> dict:
    """A lookup still unanswered at window end; latency_ms is its age."""
    return lookup_record(ctx, lookup.start_ns, lookup.pid, lookup.comm, lookup.host,
                         lookup.function, latency_ms=ms(now_ns - lookup.start_ns), ok=False,
                         error=None, addresses=[], pending=True)


class DnsProbe(Probe):
    name = "dns"
    hook_sets = (HookSet("uprobe/libc:" + ",".join(PROGRAMS),
                         (*PROGRAMS.values(), RETURN_PROGRAM)),)

    def attach(self, obj: BpfObject, hooks: HookSet) -> None:
        """Entry and return uprobes on each function of each libc found."""
        libcs = find_libcs(self.pids)
        covered = []
        for libc in libcs:
            functions, missing = [], []
            for function, program in PROGRAMS.items():
                try:
                    obj.attach_uprobe(program, libc.open_path, function, retprobe=False)
                    obj.attach_uprobe(RETURN_PROGRAM, libc.open_path, function, retprobe=True)
                    functions.append(function)
                except ProbeError:
                    missing.append(function)
            covered.append({"path": libc.path, "pid": libc.pid, "functions": functions,
                            "missing": missing})
        self.status.detail["libcs"] = covered
        if not any(c["functions"] for c in covered):
            raise ProbeError("no libc with getaddrinfo found in running processes"
                             if not libcs else "no lookup function could be probed")

    def streams(self) -> list[tuple[str, Callable[[bytes], list[dict]]]]:
        return [("events", lambda blob: dns_records(blob, self.ctx))]

    def final_records(self) -> list[dict]:
        """Lookups started in the window and still unanswered."""
        now = boot_ns()
        return [pending_record(self.ctx, lookup, now)
                for _tid, lookup in map_items(self.obj.map_fd("lookups"), ctypes.c_uint64,
                                              DnsLookup)]
