"""Wire-level DNS, the dns probe's opt-in part (`--probes +wire`): queries
and answers on UDP/TCP port 53 of every socket (bpf/dns_wire.bpf.c), parsed
here. Message bytes come from other processes and servers: every length and
offset is checked; names are written per label as DNS's presentation
format does (a dot inside a label is `\\.`, a backslash `\\\\`), bytes that are
not UTF-8 as U+FFFD; addresses are taken only from answer records for the
question's name and the CNAME chain from it."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from nettrail.capture.events import (STAT_QUERY_QUOTA, STAT_QUERY_TABLE_FULL,
                                     STAT_RINGBUF_FULL, DnsOwnerCount, DnsQueryOwner,
                                     DnsWireEvent, DnsWireKey, DnsWireQuery, RecordContext,
                                     address, ms, text)
from nettrail.capture.libbpf import BpfObject, map_items
from nettrail.capture.loader import (STAT_CAUSES, object_path, pid_filter, read_stats,
                                     stat_counts)
from nettrail.capture.preflight import CapNeed
from nettrail.errors import ProbeError

WIRE = "wire"  # its name in --probes (nettrail.format.PROBE_OPTIONS)
EVENTS = "wire_events"
OBJECT = "dns_wire"
PROGRAMS = ("wire_egress", "wire_ingress")
# maps of dns.bpf.o this object uses: the lookups in progress (a query counts
# in its libc call, which gives up its queries when it returns), the pending
# queries and their owners' shares, and the ring buffer its events go to
SHARED_MAPS = ("lookups", EVENTS, "queries", "query_owners")
MOUNTINFO = "/proc/self/mountinfo"
WIRE_NEED = CapNeed(("CAP_NET_ADMIN", "CAP_SYS_ADMIN"), "attach socket programs to the "
                    "cgroup v2 root")

# enum dns_wire_status in bpf/nettrail.h
WIRE_ANSWERED, WIRE_RESENT, WIRE_GIVEN_UP = 1, 2, 3
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
POINTER = 0xC0
TYPE_A, TYPE_CNAME, TYPE_AAAA, CLASS_IN = 1, 5, 28, 1
MAX_POINTERS = 16  # compression pointers followed in one name at most
MAX_NAME_BYTES = 255
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 35: "NAPTR", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED"}
# no answer came before the client stopped waiting (it sent the query again,
# asked on another socket or server, or its libc call returned)
TIMEOUT = "TIMEOUT"
MAX_ANSWERS = 8
MAX_OWNERS_LISTED = 8  # owners listed in meta.json: most refused, then most waiting
# the maps that only the wire programs fill: one entry each when it is off
WIRE_ONLY_MAPS = ("queries", "query_owners")

# its own drop counters, by meta.json's cause names
WIRE_STAT_CAUSES = {**STAT_CAUSES, "query_table_full": STAT_QUERY_TABLE_FULL,
                    "query_share_used": STAT_QUERY_QUOTA}


Labels = tuple[bytes, ...]


@dataclass
class Message:
    """What nettrail keeps of a DNS message."""

    name: str = ""
    truncated: bool = True   # the name did not fit in the bytes kept
    qtype: str | None = None
    rcode: int = 0
    addresses: list[str] = field(default_factory=list)
    labels: Labels = ()


def label_text(label: bytes) -> str:
    """One label as text: its own dots and backslashes escaped, so that label
    boundaries stay visible (`www.bank.com` as one label is `www\\.bank\\.com`)."""
    return label.decode("utf-8", "replace").replace("\\", "\\\\").replace(".", "\\.")


def name_text(labels: Labels) -> str:
    return ".".join(map(label_text, labels))


def read_labels(msg: bytes, pos: int) -> tuple[Labels, int, bool]:
    """A name's labels (compression pointers followed, at most MAX_POINTERS),
    the offset after it where it started, and whether it was cut by the end
    of the bytes kept (or is malformed)."""
    labels: list[bytes] = []
    end, hops, size = -1, 0, 0
    while pos < len(msg):
        length = msg[pos]
        if length == 0:
            return tuple(labels), (pos + 1 if end < 0 else end), False
        if length & POINTER == POINTER:
            if pos + 2 > len(msg) or hops >= MAX_POINTERS:
                break
            end = pos + 2 if end < 0 else end
            pos, hops = ((length & 0x3F) << 8) | msg[pos + 1], hops + 1
            continue
        size += 1 + length
        if length & POINTER or pos + 1 + length > len(msg) or size > MAX_NAME_BYTES:
            break
        labels.append(msg[pos + 1:pos + 1 + length])
        pos += 1 + length
    return tuple(labels), (len(msg) if end < 0 else end), True


def folded(labels: Labels) -> Labels:
    """A name as DNS compares names: ASCII case does not matter."""
    return tuple(label.lower() for label in labels)


def read_answers(msg: bytes, pos: int, count: int, question: Labels) -> list[str]:
    """A and AAAA addresses of the answer section, in order, no duplicates:
    only records owned by the question's name or a name the CNAME chain from
    it leads to (any other record is not an answer to this question)."""
    records: list[tuple[Labels, int, bytes, Labels | None]] = []
    for _ in range(min(count, MAX_ANSWERS * 4)):
        owner, pos, cut = read_labels(msg, pos)
        if cut or pos + RR_FIXED.size > len(msg):
            break
        rtype, rclass, _ttl, rdlength = RR_FIXED.unpack_from(msg, pos)
        pos += RR_FIXED.size
        if rclass == CLASS_IN and pos + rdlength <= len(msg):
            target, _, cut = read_labels(msg, pos) if rtype == TYPE_CNAME else ((), 0, True)
            records.append((folded(owner), rtype, msg[pos:pos + rdlength],
                            None if cut else folded(target)))
        pos += rdlength
    chain = {folded(question)}
    for owner, _rtype, _data, target in records:  # a chain's records come in its order
        if target is not None and owner in chain:
            chain.add(target)
    found: list[str] = []
    for owner, rtype, data, _target in records:
        if owner in chain and (rtype, len(data)) in ((TYPE_A, 4), (TYPE_AAAA, 16)):
            addr = address(2 if rtype == TYPE_A else 10, data)
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
    labels, pos, truncated = read_labels(msg, HEADER.size)
    qtype = None
    if not truncated and pos + 4 <= len(msg):
        number = struct.unpack_from("!H", msg, pos)[0]
        qtype = QTYPES.get(number, f"TYPE{number}")
    addresses = read_answers(msg, pos + 4, ancount, labels) \
        if flags & 0x8000 and not truncated else []
    return Message(name_text(labels), truncated, qtype, flags & 0xF, addresses, folded(labels))


def server_text(family: int, raw: bytes, port: int) -> str:
    host = address(family, raw)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wire_record(ctx: RecordContext, q: DnsWireQuery, end_ns: int, status: int | None,
                answer: bytes) -> dict:
    """A query and what came of it: answered, unanswered (the client sent it
    again, asked elsewhere or returned: latency_ms is how long it waited) or
    still pending (status None) at window end."""
    asked = parse_message(bytes(q.query[:q.query_len]))
    got = parse_message(answer) if status == WIRE_ANSWERED else None
    question = asked if asked.name or not got else got
    if got and asked.labels and got.labels != asked.labels:
        got.addresses = []  # an answer to another question
    if got:
        error = None if got.rcode == 0 else RCODES.get(got.rcode, f"RCODE{got.rcode}")
    else:
        error = TIMEOUT if status in (WIRE_RESENT, WIRE_GIVEN_UP) else None
    return {"kind": "lookup", "ts": ctx.clock.unix(q.start_ns),
            **ctx.identity(q.pid, text(q.comm), cgroup_id=q.cgroup_id or None),
            "source": "wire", "name": question.name, "name_truncated": question.truncated,
            "qtype": question.qtype, "function": None,
            "server": server_text(q.family, bytes(q.server), q.server_port),
            "latency_ms": ms(end_ns - q.start_ns), "ok": got is not None and got.rcode == 0,
            "error": error, "addresses": got.addresses if got else [],
            "pending": status is None, "resolved_by": "dns",
            "call_ts": ctx.clock.unix(q.call_start_ns) if q.call_start_ns else None,
            "resolv_conf": None}


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
        return read_stats(self.obj, WIRE_STAT_CAUSES)

    def loss(self) -> dict:
        """Its drops by cause: ring buffer full, query table full, and queries
        refused because their owner (uid, or uid 0's network namespace) had
        its share of the table; with the owners that had most refused or
        waiting (who filled the table)."""
        counts = stat_counts(self.obj)
        owners = sorted(((count.refused, count.tracked, owner.uid, count.last_netns)
                         for owner, count in map_items(self.obj.map_fd("query_owners"),
                                                       DnsQueryOwner, DnsOwnerCount)
                         if count.refused or count.tracked), reverse=True)
        return {"ring_full": counts[STAT_RINGBUF_FULL],
                "query_table_full": counts[STAT_QUERY_TABLE_FULL],
                "query_share_used": counts[STAT_QUERY_QUOTA],
                "query_owners": [{"uid": uid, "netns": netns, "waiting": waiting,
                                  "refused": refused}
                                 for refused, waiting, uid, netns in owners[:MAX_OWNERS_LISTED]]}

    def close(self) -> None:
        self.obj.close()
