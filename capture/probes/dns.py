"""dns probe: every libc name lookup, in every process that maps a libc or
contains the lookup functions itself, also in processes started during the
window; with the `wire` option, DNS queries on the wire as well
(capture/probes/dns_wire.py)."""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable

from nettrail.capture.clock import boot_ns
from nettrail.capture.events import (DNS_EXEC, DNS_HEAD, MAX_ADDRS, STAT_MAP_FULL,
                                     STAT_RINGBUF_FULL, DnsLookup, RecordContext, address, ms,
                                     text)
from nettrail.capture.libbpf import BPF_TRACE_UPROBE_MULTI, BpfObject, RingBuffers, map_items
from nettrail.capture.libcs import LOOKUP_FUNCTIONS, Finder, Library, Target, all_pids
from nettrail.capture.loader import HookSet, Probe, add_lost, recursion_misses, stat_counts
from nettrail.capture.preflight import (BPF_NEEDS, IDENTITY_NEED, CapNeed, kernel_has_uprobe_multi,
                                        missing_caps)
from nettrail.capture.resolvconf import ResolvConfs
from nettrail.capture.probes.dns_wire import (EVENTS as WIRE_EVENTS, WIRE, WIRE_NEED,
                                              WIRE_ONLY_MAPS, WireDns)
from nettrail.errors import NettrailError, ProbeError

# libc function: its entry program (all share the return program)
PROGRAMS = {"getaddrinfo": "getaddrinfo_entry", "gethostbyname": "gethostbyname_entry",
            "gethostbyname2": "gethostbyname2_entry",
            "gethostbyname_r": "gethostbyname_r_entry",
            "gethostbyname2_r": "gethostbyname2_r_entry"}
RETURN_PROGRAM = "lookup_exit"
MULTI_ENTRY, MULTI_RETURN = "lookup_entry_multi", "lookup_exit_multi"
EXEC_PROGRAM = "exec_watch"
# enum dns_function in bpf/nettrail.h
FUNCTION_NAMES = {1: "getaddrinfo", 2: "gethostbyname", 3: "gethostbyname2",
                  4: "gethostbyname_r", 5: "gethostbyname2_r"}
FUNCTION_IDS = {name: number for number, name in FUNCTION_NAMES.items()}
FN_GETADDRINFO = 1
EAI_NAMES = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
H_ERRNO_NAMES = {1: "HOST_NOT_FOUND", 2: "TRY_AGAIN", 3: "NO_RECOVERY", 4: "NO_DATA"}
# names every resolver answers without asking DNS (RFC 6761 localhost)
LOCALHOST = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

# A new program maps its libc after exec (the dynamic loader does): look at
# it every POLL_S until a libc shows up, for at most WATCH_S.
POLL_S = 0.1
WATCH_S = 1.0
MAX_WATCHED = 256
UNUSED_RING_BYTES = 4096  # a ring buffer's smallest size: one page


def dns_error(function: int, ret: int, h_errno: int) -> str | None:
    """The failure's name: EAI_* for getaddrinfo, h_errno or errno for the others."""
    if ret == 0:
        return None
    if function == FN_GETADDRINFO:
        return EAI_NAMES.get(ret, f"EAI_{ret}")
    if h_errno in H_ERRNO_NAMES:
        return H_ERRNO_NAMES[h_errno]
    return errno.errorcode.get(ret, "UNKNOWN") if ret > 0 else "UNKNOWN"


def is_literal(name: str) -> bool:
    """An address written out (getaddrinfo also takes inet_aton's short forms
    like 10.1); such a "lookup" asks nobody. A name is tried only as what
    it may be (each failed parse costs a microsecond or two, once per
    lookup): inet_aton's forms all begin with a digit, an IPv6 address has
    a colon."""
    if name[:1].isdigit():
        try:
            socket.inet_aton(name)
            return True
        except OSError:
            pass
    if ":" not in name:
        return False
    try:
        ipaddress.IPv6Address(name.split("%", 1)[0])
        return True
    except ValueError:
        return False


def is_localhost(name: str) -> bool:
    lowered = name.lower().rstrip(".")
    return lowered in LOCALHOST or lowered.endswith(".localhost")


def resolved_by(name: str, ok: bool, wire_queries: int, wire_on: bool) -> str | None:
    """literal, hosts or dns; None when nothing tells (wire-level DNS off)."""
    if is_literal(name):
        return "literal"
    if wire_queries:
        return "dns"
    if is_localhost(name) or (wire_on and ok):
        return "hosts"  # answered, and no query left this process
    return None


def lookup_record(ctx: RecordContext, start_ns: int, pid: int, comm: bytes, name: bytes,
                  truncated: int, function: int, cgroup_id: int, latency_ms: float, ok: bool,
                  error: str | None, addresses: list[str], resolver: str | None,
                  resolv_conf: int | None, pending: bool = False) -> dict:
    return {"kind": "lookup", "ts": ctx.clock.unix(start_ns),
            **ctx.identity(pid, text(comm), cgroup_id=cgroup_id or None),
            "source": "libc", "name": text(name), "name_truncated": bool(truncated),
            "qtype": None, "function": FUNCTION_NAMES.get(function, "?"), "server": None,
            "latency_ms": latency_ms, "ok": ok, "error": error, "addresses": addresses,
            "pending": pending, "resolved_by": resolver, "call_ts": None,
            "resolv_conf": resolv_conf}


def dns_records(blob: bytes, ctx: RecordContext, wire_on: bool,
                resolv_conf: Callable[[int], int | None]) -> list[dict]:
    """Records from struct dns_events, each as long as its name (host_len
    bytes after the fixed fields); `resolv_conf`: the id of a pid's resolver
    configuration."""
    out, pos, head = [], 0, DNS_HEAD.size
    while pos < len(blob):
        (start, end, cgroup_id, pid, ret, h_errno, function, naddrs, truncated, _pad,
         wire_queries, host_len, *rest) = DNS_HEAD.unpack_from(blob, pos)
        host = blob[pos + head:pos + head + host_len]
        pos += head + host_len
        families, (addrs, comm) = rest[:MAX_ADDRS], rest[MAX_ADDRS:]
        addresses: list[str] = []
        for i in range(min(naddrs, MAX_ADDRS)):
            addr = address(families[i], addrs[16 * i:16 * i + 16])
            if addr not in addresses:
                addresses.append(addr)
        out.append(lookup_record(
            ctx, start, pid, comm, host, truncated, function, cgroup_id,
            latency_ms=ms(end - start), ok=ret == 0, error=dns_error(function, ret, h_errno),
            addresses=addresses,
            resolver=resolved_by(text(host), ret == 0, wire_queries, wire_on),
            resolv_conf=resolv_conf(pid)))
    return out


def pending_record(ctx: RecordContext, lookup: DnsLookup, now_ns: int, wire_on: bool,
                   resolv_conf: int | None) -> dict:
    """A lookup still unanswered at window end; latency_ms is its age."""
    return lookup_record(ctx, lookup.start_ns, lookup.pid, lookup.comm, lookup.host,
                         lookup.name_truncated, lookup.function, lookup.cgroup_id,
                         latency_ms=ms(now_ns - lookup.start_ns), ok=False, error=None,
                         addresses=[], pending=True, resolv_conf=resolv_conf,
                         resolver=resolved_by(text(lookup.host), False, lookup.wire_queries,
                                              wire_on))


class ExecWatch:
    """Processes that start a program during the window: each is looked at
    again every POLL_S until it maps a libc, for at most WATCH_S, on a thread
    of its own (the window's loop knows nothing of it)."""

    def __init__(self, obj: BpfObject, probe_pids: Callable[[Iterable[int]], set[int]],
                 resolv_confs: ResolvConfs) -> None:
        self.probe_pids = probe_pids
        self.resolv_confs = resolv_confs
        self.watching: dict[int, float] = {}  # pid: until (monotonic)
        self.unwatched = 0
        self.rings = RingBuffers()
        self.rings.add(obj.map_fd("execs"), self._on_execs)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="nettrail-dns-exec", daemon=True)
        self.error: str | None = None

    def _on_execs(self, blob: bytes) -> None:
        until = time.monotonic() + WATCH_S
        for (pid,) in DNS_EXEC.iter_unpack(blob):
            self.resolv_confs.forget(pid)
            if pid in self.watching or len(self.watching) < MAX_WATCHED:
                self.watching[pid] = until
            else:
                self.unwatched += 1

    def _run(self) -> None:
        try:
            while not self.done.wait(POLL_S):
                self.rings.drain()
                now = time.monotonic()
                with_libc = self.probe_pids(list(self.watching))
                # read now: a short-lived program may be gone when its lookups are
                for pid in with_libc:
                    self.resolv_confs.of_pid(pid)
                self.watching = {pid: until for pid, until in self.watching.items()
                                 if until > now and pid not in with_libc}
        except NettrailError as exc:  # the window goes on without new programs
            self.error = exc.problem

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
        self.rings.free()


_HOOKED = ",".join(PROGRAMS) + "+tp_btf/sched_process_exec"
# one link per file and direction (6.6+), else one uprobe per function
MULTI = HookSet("uprobe_multi/libc:" + _HOOKED, (MULTI_ENTRY, MULTI_RETURN, EXEC_PROGRAM))
SINGLE = HookSet("uprobe/libc:" + _HOOKED, (*PROGRAMS.values(), RETURN_PROGRAM, EXEC_PROGRAM))


NEEDS = (
    *BPF_NEEDS,
    CapNeed(("CAP_CHECKPOINT_RESTORE", "CAP_SYS_ADMIN"), "open the files processes map, "
            "through /proc/PID/map_files"),
    CapNeed(("CAP_SYS_PTRACE",), "read other users' processes' maps: libraries only they "
            "map (a container's own libc) are not probed", required=False),
    IDENTITY_NEED,
)
# A kernel without uprobe_multi (before 6.6) gets one uprobe per function,
# made with perf_event_open's uprobe PMU, which refuses CAP_PERFMON alone
# (EACCES as uid 65534 with CAP_BPF+CAP_PERFMON on 6.1, 6.12 and 6.18).
SINGLE_UPROBE_NEED = CapNeed(("CAP_SYS_ADMIN",), "uprobes through perf_event_open: this "
                             "kernel has no uprobe_multi links (6.6+)")


class DnsProbe(Probe):
    name = "dns"
    hook_sets = (MULTI, SINGLE)

    @property
    def capabilities(self) -> tuple[CapNeed, ...]:  # type: ignore[override]
        """This kernel's: CAP_SYS_ADMIN too where only single uprobes exist."""
        return NEEDS if kernel_has_uprobe_multi() else (*NEEDS, SINGLE_UPROBE_NEED)

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self.finder = Finder()
        self.libraries: list[Library] = []
        self.watch: ExecWatch | None = None
        self.wire: WireDns | None = None
        self.multi = False
        self.resolv_confs = ResolvConfs()

    @property
    def wire_on(self) -> bool:
        return self.wire is not None

    def attach(self, obj: BpfObject, hooks: HookSet) -> None:
        """Exec watch first (a program started while the others are scanned
        is still seen), then every lookup function of every process."""
        self.finder, self.libraries, self.multi = Finder(), [], hooks is MULTI
        obj.attach(EXEC_PROGRAM)
        self.probe_processes(obj, self.pids or all_pids())
        if self.finder.opened and not self.libraries:
            raise ProbeError("no lookup function could be probed: "
                             + self.finder.not_probed[-1]["reason"])

    def configure(self, obj: BpfObject, hooks: HookSet) -> None:
        super().configure(obj, hooks)
        if hooks is MULTI:
            for program in (MULTI_ENTRY, MULTI_RETURN):
                obj.expect_attach_type(program, BPF_TRACE_UPROBE_MULTI)
        if WIRE not in self.options:
            obj.resize_map(WIRE_EVENTS, UNUSED_RING_BYTES)
            for name in WIRE_ONLY_MAPS:
                obj.resize_map(name, 1)

    def start(self, started: dict[str, Probe]) -> None:
        super().start(started)
        if not self.running:
            return
        if WIRE in self.options:
            self.start_wire()
        self.watch = ExecWatch(self.obj, lambda pids: self.probe_processes(self.obj, pids),
                               self.resolv_confs)
        self.watch.start()
        self.update_status()

    def start_wire(self) -> None:
        required, _ = missing_caps((WIRE_NEED,))
        if required:
            self.status.detail["wire_error"] = f"wire-level DNS needs {WIRE_NEED.text()}"
            return
        try:
            self.wire = WireDns(self.ctx, self.pids, self.obj)
        except ProbeError as exc:
            self.status.detail["wire_error"] = exc.problem

    def probe_processes(self, obj: BpfObject, pids: Iterable[int]) -> set[int]:
        """Attach to the new lookup files of these processes; the pids that map
        a libc (new or not) are returned."""
        with_libc: set[int] = set()
        for target in self.finder.targets(pids, with_libc):
            try:
                self.libraries.append(self.attach_target(obj, target))
            except ProbeError as exc:
                self.finder.skip(target.mapping, f"attach failed: {exc.problem}")
            finally:
                target.close()  # each uprobe holds the file now
        if self.watch:
            self.update_status()
        return with_libc

    def attach_target(self, obj: BpfObject, target: Target) -> Library:
        functions = [f for f in LOOKUP_FUNCTIONS if f in target.offsets]
        offsets = [target.offsets[f] for f in functions]
        if self.multi:
            cookies = [FUNCTION_IDS[f] for f in functions]
            for program, retprobe in ((MULTI_ENTRY, False), (MULTI_RETURN, True)):
                obj.attach_uprobe_multi(program, target.attach_path, offsets, cookies,
                                        retprobe)
        else:
            for function, offset in zip(functions, offsets):
                obj.attach_uprobe(PROGRAMS[function], target.attach_path, offset, False)
                obj.attach_uprobe(RETURN_PROGRAM, target.attach_path, offset, True)
        return Library(target.mapping.path, target.mapping.pid, target.kind, functions,
                       [f for f in LOOKUP_FUNCTIONS if f not in target.offsets])

    def update_status(self) -> None:
        """meta.json's view (new lists each time: the window may be writing
        the old ones)."""
        detail = {"libcs": [lib.as_json() for lib in self.libraries],
                  "not_probed": list(self.finder.not_probed),
                  "not_probed_unlisted": self.finder.not_listed,
                  "wire": "on" if self.wire_on else "off", **self.resolv_confs.as_detail()}
        if self.watch and (self.watch.unwatched or self.watch.error):
            detail["exec_watch"] = {"unwatched": self.watch.unwatched,
                                    "error": self.watch.error}
        self.status.detail = {**self.status.detail, **detail}

    def streams(self) -> list[tuple[str, Callable[[bytes], list[dict]]]]:
        wire = self.wire.streams() if self.wire else []
        # wire first: a query's record is written before its libc call's
        return [*wire, ("events", lambda blob: dns_records(blob, self.ctx, self.wire_on,
                                                           self.resolv_confs.of_pid))]

    def final_records(self) -> list[dict]:
        """Lookups started in the window and still unanswered."""
        now = boot_ns()
        wire = self.wire.final_records(now) if self.wire else []
        return wire + [pending_record(self.ctx, lookup, now, self.wire_on,
                                      self.resolv_confs.of_pid(lookup.pid))
                       for _tid, lookup in map_items(self.obj.map_fd("lookups"),
                                                     ctypes.c_uint64, DnsLookup)]

    def lost_events(self) -> dict[str, int]:
        """By cause (asked at every checkpoint of meta.json); probes.dns.loss
        there also names who filled the query table; resolv_confs grows as
        lookups are seen."""
        if self.obj:
            self.status.detail = {**self.status.detail, "loss": self.loss(),
                                  **self.resolv_confs.as_detail()}
        return add_lost(super().lost_events(), self.wire.lost_events() if self.wire else {})

    def loss(self) -> dict:
        counts = stat_counts(self.obj)
        wire = self.wire.loss() if self.wire else {}
        return {**wire, "ring_full": counts[STAT_RINGBUF_FULL] + wire.get("ring_full", 0),
                "lookup_table_full": counts[STAT_MAP_FULL],
                "recursion_misses": recursion_misses(self.obj)}

    def close(self) -> None:
        if self.watch:
            self.watch.close()
            self.update_status()
            self.watch = None
        if self.wire:
            self.wire.close()
            self.wire = None
        super().close()
