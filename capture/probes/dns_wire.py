"""Wire-level DNS, the dns probe's opt-in part (`--probes +wire`): queries
and answers on UDP/TCP port 53 of every socket (bpf/dns_wire.bpf.c), parsed
here. Message bytes come from other processes and servers: every length and
offset is checked, names are text with U+FFFD for bytes that are not UTF-8."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from nettrail.capture.events import (DnsWireEvent, DnsWireKey, DnsWireQuery, RecordContext,
                                     address, ms, text)
from nettrail.capture.libbpf import BpfObject, map_items
from nettrail.capture.loader import object_path, pid_filter, read_stats
from nettrail.capture.preflight import CapNeed
from nettrail.errors import ProbeError

WIRE = "wire"  # its name in --probes (nettrail.format.PROBE_OPTIONS)
EVENTS = "wire_events"
OBJECT = "dns_wire"
PROGRAMS = ("wire_egress", "wire_ingress")
# maps of dns.bpf.o this object uses: the lookups in progress (a query counts
# in its libc call) and the ring buffer its events go to
SHARED_MAPS = ("lookups", EVENTS)
MOUNTINFO = "/proc/self/mountinfo"
WIRE_NEED = CapNeed(("CAP_NET_ADMIN", "CAP_SYS_ADMIN"), "attach socket programs to the "
                    "cgroup v2 root")

# enum dns_wire_status in bpf/nettrail.h
WIRE_ANSWERED, WIRE_RESENT = 1, 2
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
POINTER = 0xC0
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 35: "NAPTR", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED"}
# an answer never came before the same query was sent again
TIMEOUT = "TIMEOUT"
MAX_ANSWERS = 8


@dataclass
class Message:
    """What nettrail keeps of a DNS message."""

    name: str = ""
    truncated: bool = True   # the name did not fit in the bytes kept
    qtype: str | None = None
    rcode: int = 0
    addresses: list[str] = field(default_factory=list)


def read_name(msg: bytes, pos: int) -> tuple[str, int, bool]:
    """The question's name (uncompressed, as queries write it), the offset
    after it, and whether it was cut by the end of the bytes kept."""
    labels = []
    while pos < len(msg):
        length = msg[pos]
        if length == 0:
            return ".".join(labels), pos + 1, False
        if length & POINTER or pos + 1 + length > len(msg):
            break
        labels.append(msg[pos + 1:pos + 1 + length].decode("utf-8", "replace"))
        pos += 1 + length
    return ".".join(labels), len(msg), True


def skip_name(msg: bytes, pos: int) -> int:
    """The offset after a (possibly compressed) name in a resource record."""
    while pos < len(msg):
        length = msg[pos]
        if length & POINTER == POINTER:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length
    return len(msg)


def read_answers(msg: bytes, pos: int, count: int) -> list[str]:
    """A and AAAA addresses of the answer section, in order, no duplicates."""
    found: list[str] = []
    for _ in range(min(count, MAX_ANSWERS * 4)):
        pos = skip_name(msg, pos)
        if pos + RR_FIXED.size > len(msg):
            break
        rtype, rclass, _ttl, rdlength = RR_FIXED.unpack_from(msg, pos)
        pos += RR_FIXED.size
        rdata = msg[pos:pos + rdlength]
        pos += rdlength
        if rclass != CLASS_IN or len(rdata) != rdlength:
            continue
        if (rtype, rdlength) in ((TYPE_A, 4), (TYPE_AAAA, 16)):
            addr = address(2 if rtype == TYPE_A else 10, rdata)
            if addr not in found and len(found) < MAX_ANSWERS:
                found.append(addr)
    return found


def parse_message(msg: bytes) -> Message:
    """Name, type, response code and (for answers) addresses of a message."""
    if len(msg) < HEADER.size:
        return Message()
    _id, flags, qdcount, ancount, _ns, _ar = HEADER.unpack_from(msg)
    if not qdcount:
        return Message(rcode=flags & 0xF)
    name, pos, truncated = read_name(msg, HEADER.size)
    qtype = None
    if not truncated and pos + 4 <= len(msg):
        number = struct.unpack_from("!H", msg, pos)[0]
        qtype = QTYPES.get(number, f"TYPE{number}")
    addresses = read_answers(msg, pos + 4, ancount) if flags & 0x8000 and not truncated else []
    return Message(name, truncated, qtype, flags & 0xF, addresses)


def server_text(family: int, raw: bytes, port: int) -> str:
    host = address(family, raw)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wire_record(ctx: RecordContext, q: DnsWireQuery, end_ns: int, status: int | None,
                answer: bytes) -> dict:
    """A query and what came of it: answered, sent again (no answer in
    time) or still pending (status None) at window end."""
    asked = parse_message(bytes(q.query[:q.query_len]))
    got = parse_message(answer) if status == WIRE_ANSWERED else None
    question = asked if asked.name or not got else got
    if got:
        error = None if got.rcode == 0 else RCODES.get(got.rcode, f"RCODE{got.rcode}")
    else:
        error = TIMEOUT if status == WIRE_RESENT else None
    return {"kind": "lookup", "ts": ctx.clock.unix(q.start_ns),
            **ctx.identity(q.pid, text(q.comm), cgroup_id=q.cgroup_id or None),
            "source": "wire", "name": question.name, "name_truncated": question.truncated,
            "qtype": question.qtype, "function": None,
            "server": server_text(q.family, bytes(q.server), q.server_port),
            "latency_ms": ms(end_ns - q.start_ns), "ok": got is not None and got.rcode == 0,
            "error": error, "addresses": got.addresses if got else [],
            "pending": status is None, "resolved_by": "dns",
            "call_ts": ctx.clock.unix(q.call_start_ns) if q.call_start_ns else None}


def wire_records(blob: bytes, ctx: RecordContext) -> list[dict]:
    """Records from struct dns_wire_event bytes."""
    size = ctypes.sizeof(DnsWireEvent)
    out = []
    for start in range(0, len(blob) - size + 1, size):
        e = DnsWireEvent.from_buffer_copy(blob, start)
        out.append(wire_record(ctx, e.q, e.end_ns, e.status, bytes(e.answer[:e.answer_len])))
    return out


def cgroup2_root(mountinfo: str = MOUNTINFO) -> str:
    """Where the cgroup v2 hierarchy's root is mounted (pure v2 or hybrid)."""
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-") if "-" in fields else -1
            if sep > 0 and fields[sep + 1] == "cgroup2" and fields[3] == "/":
                return fields[4].replace("\\040", " ")
    raise ProbeError("no cgroup v2 hierarchy is mounted")


class WireDns:
    """dns_wire.bpf.o on the cgroup v2 root, sharing dns.bpf.o's lookups map."""

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...], shared: BpfObject) -> None:
        self.ctx = ctx
        self.obj = BpfObject(str(object_path(OBJECT)))
        try:
            self.obj.set_rodata(pid_filter(pids))
            for name in SHARED_MAPS:
                self.obj.reuse_map(name, shared.map_fd(name))
            self.obj.load()
            cgroup = os.open(cgroup2_root(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for program in PROGRAMS:
                    self.obj.attach_cgroup(program, cgroup)
            finally:
                os.close(cgroup)
        except (ProbeError, OSError) as exc:
            self.obj.close()
            raise ProbeError(f"wire-level DNS: {getattr(exc, 'problem', exc)}") from exc

    def streams(self) -> list[tuple[str, Callable[[bytes], list[dict]]]]:
        """Its ring buffer, a map of dns.bpf.o."""
        return [(EVENTS, lambda blob: wire_records(blob, self.ctx))]

    def final_records(self, now_ns: int) -> list[dict]:
        """Queries still waiting for an answer."""
        return [wire_record(self.ctx, q, now_ns, None, b"")
                for _key, q in map_items(self.obj.map_fd("queries"), DnsWireKey,
                                         DnsWireQuery)]

    def lost_events(self) -> dict[str, int]:
        return read_stats(self.obj)

    def close(self) -> None:
        self.obj.close()
