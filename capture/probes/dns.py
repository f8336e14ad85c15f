"""dns probe: every libc name lookup, on every libc running processes map."""

from __future__ import annotations

import ctypes

from nettrail.capture.clock import Clock, boot_ns
from nettrail.capture.events import DnsLookup, pending_record
from nettrail.capture.libbpf import BpfObject, map_items
from nettrail.capture.libcs import find_libcs
from nettrail.capture.loader import HookSet, Probe
from nettrail.errors import ProbeError

# libc function: its entry program (all share the return program)
FUNCTIONS = {"getaddrinfo": "getaddrinfo_entry", "gethostbyname": "gethostbyname_entry",
             "gethostbyname2": "gethostbyname2_entry",
             "gethostbyname_r": "gethostbyname_r_entry",
             "gethostbyname2_r": "gethostbyname2_r_entry"}
RETURN_PROGRAM = "lookup_exit"


class DnsProbe(Probe):
    name = "dns"
    hook_sets = (HookSet("uprobe/libc:" + ",".join(FUNCTIONS),
                         (*FUNCTIONS.values(), RETURN_PROGRAM)),)

    def attach(self, obj: BpfObject, hooks: HookSet) -> None:
        """Entry and return uprobes on each function of each libc found."""
        libcs = find_libcs(self.pids)
        covered = []
        for libc in libcs:
            functions, missing = [], []
            for function, program in FUNCTIONS.items():
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

    def pending(self, clock: Clock) -> list[dict]:
        """Lookups started in the window and still unanswered."""
        now = boot_ns()
        return [pending_record(lookup, clock, now)
                for _tid, lookup in map_items(self.obj.map_fd("lookups"), ctypes.c_uint64,
                                              DnsLookup)]
