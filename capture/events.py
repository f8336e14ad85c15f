"""Python mirror of bpf/nettrail.h, and what every probe's decoder shares:
text and address conversion, the record context (clock, host, identity)."""

from __future__ import annotations

import ctypes
import functools
import socket
import struct
from ctypes import c_char, c_int32, c_uint8, c_uint16, c_uint32, c_uint64
from dataclasses import dataclass

from nettrail.capture.clock import Clock
from nettrail.capture.identity import Identities

CACHE_SIZE = 65536
COMM_LEN = 16
HOST_LEN = 256
MAX_ADDRS = 8
MAX_PIDS = 16
DNS_MSG_LEN = 512
DNS_QUERY_LEN = 320

# enum stat_index in bpf/nettrail.h
STAT_RINGBUF_FULL, STAT_MAP_FULL, STAT_QUERY_TABLE_FULL, STAT_QUERY_QUOTA, STAT_MAX = range(5)
WIRE_IDS = 4
SESSION_CLOSED = 1  # enum session_state; anything else is open
SIDES = {1: "client", 2: "server"}  # enum conn_side; 0: unknown
ENDS = {1: "normal", 2: "reset", 3: "refused", 4: "timeout"}  # enum session_end
CONN_CHRONO, CONN_RTO = 1, 2  # enum conn_flags


class ConnKey(ctypes.Structure):
    _fields_ = [("laddr", c_uint8 * 16), ("raddr", c_uint8 * 16), ("pid", c_uint32),
                ("netns", c_uint32), ("lport", c_uint16), ("rport", c_uint16),
                ("family", c_uint16), ("pad", c_uint16)]


class ConnVal(ctypes.Structure):
    _fields_ = [("rx_bytes", c_uint64), ("tx_bytes", c_uint64), ("retrans_bytes", c_uint64),
                ("cgroup_id", c_uint64), ("srtt_us", c_uint32), ("nspid", c_uint32),
                ("side", c_uint8), ("flags", c_uint8), ("pad", c_uint8 * 6),
                ("comm", c_char * COMM_LEN), ("busy_us", c_uint64),
                ("rwnd_limited_us", c_uint64), ("sndbuf_limited_us", c_uint64),
                ("delivery_bytes_per_s", c_uint64), ("retrans_segs", c_uint32),
                ("lost_segs", c_uint32), ("rto_count", c_uint32), ("segs_out", c_uint32)]


class ConnRow(ctypes.Structure):
    _fields_ = [("key", ConnKey), ("val", ConnVal)]


class SessionEvent(ctypes.Structure):
    _fields_ = [("ts_ns", c_uint64), ("opened_ns", c_uint64), ("tx_bytes", c_uint64),
                ("rx_bytes", c_uint64), ("cgroup_id", c_uint64), ("laddr", c_uint8 * 16),
                ("raddr", c_uint8 * 16), ("pid", c_uint32), ("netns", c_uint32),
                ("retrans_segs", c_uint32), ("srtt_us", c_uint32), ("nspid", c_uint32),
                ("lport", c_uint16), ("rport", c_uint16), ("family", c_uint16),
                ("state", c_uint8), ("side", c_uint8), ("end", c_uint8),
                ("handshake", c_uint8), ("pad", c_uint8 * 2), ("comm", c_char * COMM_LEN),
                ("connect_us", c_uint32), ("syn_retrans", c_uint32), ("min_rtt_us", c_uint32),
                ("pad2", c_uint32)]


class DnsEvent(ctypes.Structure):
    _fields_ = [("start_ns", c_uint64), ("end_ns", c_uint64), ("cgroup_id", c_uint64),
                ("pid", c_uint32), ("ret", c_int32), ("h_errno", c_int32),
                ("function", c_uint8), ("naddrs", c_uint8), ("name_truncated", c_uint8),
                ("pad", c_uint8), ("wire_queries", c_uint32), ("host_len", c_uint16),
                ("families", c_uint16 * MAX_ADDRS), ("addrs", (c_uint8 * 16) * MAX_ADDRS),
                ("comm", c_char * COMM_LEN), ("host", c_char * HOST_LEN)]


class DnsLookup(ctypes.Structure):
    _fields_ = [("start_ns", c_uint64), ("result_pp", c_uint64), ("herrno_p", c_uint64),
                ("inner_herrno_p", c_uint64), ("cgroup_id", c_uint64),
                ("inner_herrno", c_int32), ("depth", c_uint32), ("pid", c_uint32),
                ("wire_queries", c_uint32), ("function", c_uint8),
                ("name_truncated", c_uint8), ("host_len", c_uint16), ("pad", c_uint8 * 4),
                ("wire_sock", c_uint64),
                ("wire_ids", c_uint16 * WIRE_IDS), ("wire_nids", c_uint32), ("pad2", c_uint32),
                ("comm", c_char * COMM_LEN), ("host", c_char * HOST_LEN)]


class DnsExecEvent(ctypes.Structure):
    _fields_ = [("pid", c_uint32)]


class DnsWireKey(ctypes.Structure):
    _fields_ = [("sock_cookie", c_uint64), ("id", c_uint16), ("pad", c_uint16 * 3)]


class DnsWireQuery(ctypes.Structure):
    _fields_ = [("start_ns", c_uint64), ("call_start_ns", c_uint64), ("cgroup_id", c_uint64),
                ("pid", c_uint32), ("family", c_uint16), ("server_port", c_uint16),
                ("uid", c_uint32), ("netns", c_uint32), ("server", c_uint8 * 16), ("proto", c_uint8), ("pad", c_uint8),
                ("query_len", c_uint16), ("comm", c_char * COMM_LEN),
                ("query", c_uint8 * DNS_QUERY_LEN)]


class DnsQueryOwner(ctypes.Structure):
    _fields_ = [("uid", c_uint32), ("netns", c_uint32)]


class DnsOwnerCount(ctypes.Structure):
    _fields_ = [("tracked", c_uint32), ("last_netns", c_uint32), ("refused", c_uint64)]


class DnsWireEvent(ctypes.Structure):
    _fields_ = [("q", DnsWireQuery), ("end_ns", c_uint64), ("status", c_uint8),
                ("pad", c_uint8), ("answer_len", c_uint16), ("pad2", c_uint32),
                ("answer", c_uint8 * DNS_MSG_LEN)]


class UdpFlowKey(ctypes.Structure):
    _fields_ = [("sock_cookie", c_uint64), ("laddr", c_uint8 * 16), ("raddr", c_uint8 * 16),
                ("lport", c_uint16), ("rport", c_uint16), ("family", c_uint16),
                ("pad", c_uint16)]


class UdpFlow(ctypes.Structure):
    _fields_ = [("rx_bytes", c_uint64), ("tx_bytes", c_uint64), ("rx_datagrams", c_uint64),
                ("tx_datagrams", c_uint64), ("first_ns", c_uint64), ("last_ns", c_uint64)]


class UdpOwner(ctypes.Structure):
    _fields_ = [("cgroup_id", c_uint64), ("pid", c_uint32), ("nspid", c_uint32),
                ("netns", c_uint32), ("pad", c_uint32), ("comm", c_char * COMM_LEN)]


class UdpSockRow(ctypes.Structure):
    _fields_ = [("sock_cookie", c_uint64), ("drops", c_uint64), ("ino", c_uint64),
                ("owner", UdpOwner)]
class ListenerRow(ctypes.Structure):
    _fields_ = [("cgroup_id", c_uint64), ("ino", c_uint64), ("laddr", c_uint8 * 16),
                ("pid", c_uint32), ("nspid", c_uint32), ("netns", c_uint32),
                ("ack_backlog", c_uint32), ("max_ack_backlog", c_uint32), ("drops", c_uint32),
                ("syn_queue", c_uint32), ("lport", c_uint16), ("family", c_uint16),
                ("comm", c_char * COMM_LEN)]


class DropKey(ctypes.Structure):
    _fields_ = [("saddr", c_uint8 * 16), ("daddr", c_uint8 * 16), ("netns", c_uint32),
                ("reason", c_uint32), ("sport", c_uint16), ("dport", c_uint16),
                ("family", c_uint16), ("proto", c_uint8), ("pad", c_uint8)]


class DropVal(ctypes.Structure):
    _fields_ = [("packets", c_uint64), ("bytes", c_uint64)]


MIRRORS = {"conn_key": ConnKey, "conn_val": ConnVal, "conn_row": ConnRow,
           "session_event": SessionEvent, "dns_event": DnsEvent, "dns_lookup": DnsLookup,
           "dns_exec_event": DnsExecEvent, "dns_wire_key": DnsWireKey,
           "dns_wire_query": DnsWireQuery, "dns_wire_event": DnsWireEvent,
           "dns_query_owner": DnsQueryOwner, "dns_owner_count": DnsOwnerCount,
           "udp_flow_key": UdpFlowKey, "udp_flow": UdpFlow, "udp_owner": UdpOwner,
           "udp_sock_row": UdpSockRow, "listener_row": ListenerRow,
           "drop_key": DropKey, "drop_val": DropVal}

_SCALARS = {c_uint64: "Q", c_uint32: "I", c_int32: "i", c_uint16: "H", c_uint8: "B"}


def _layout(ctype: type[ctypes.Structure], until: str | None = None) -> str:
    """A struct-module format with exactly a mirror's layout (so the mirror
    stays the one description of each C struct): bytes for byte arrays,
    explicit padding where C aligns; with `until`, the fields before that one."""
    fmt, pos = "", 0
    for name, ftype in ctype._fields_:
        offset = getattr(ctype, name).offset
        fmt += f"{offset - pos}x" if offset > pos else ""
        if name == until:
            return fmt
        if issubclass(ftype, ctypes.Structure):
            fmt += _layout(ftype)
        elif issubclass(ftype, ctypes.Array):
            scalar = _SCALARS.get(ftype._type_)
            fmt += f"{ftype._length_}{scalar}" if scalar and scalar != "B" else \
                f"{ctypes.sizeof(ftype)}s"
        else:
            fmt += _SCALARS[ftype]
        pos = offset + ctypes.sizeof(ftype)
    return fmt + (f"{ctypes.sizeof(ctype) - pos}x" if ctypes.sizeof(ctype) > pos else "")


CONN_KEY = struct.Struct("<" + _layout(ConnKey))
CONN_VAL = struct.Struct("<" + _layout(ConnVal))
CONN_ROW = struct.Struct("<" + _layout(ConnRow))
SESSION = struct.Struct("<" + _layout(SessionEvent))
# a dns_event is sent as long as its name: what comes before it, then host_len bytes
DNS_HEAD = struct.Struct("<" + _layout(DnsEvent, until="host"))
DNS_EXEC = struct.Struct("<" + _layout(DnsExecEvent))
UDP_FLOW_KEY = struct.Struct("<" + _layout(UdpFlowKey))
UDP_FLOW = struct.Struct("<" + _layout(UdpFlow))
UDP_OWNER = struct.Struct("<" + _layout(UdpOwner))
UDP_SOCK_ROW = struct.Struct("<" + _layout(UdpSockRow))
LISTENER_ROW = struct.Struct("<" + _layout(ListenerRow))
DROP_KEY = struct.Struct("<" + _layout(DropKey))
DROP_VAL = struct.Struct("<" + _layout(DropVal))


# Names and addresses repeat from event to event: convert each once.
@functools.lru_cache(maxsize=CACHE_SIZE)
def text(raw: bytes) -> str:
    """A kernel or user C string as text; undecodable bytes become U+FFFD."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@functools.lru_cache(maxsize=CACHE_SIZE)
def address(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw[:16])


FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}


def ms(ns: int) -> float:
    """Nanoseconds as milliseconds with microsecond resolution."""
    return ns // 1000 / 1000


@dataclass(frozen=True)
class RecordContext:
    """What every record of one capture shares: its clock, its host, and who
    each pid is."""

    clock: Clock
    host: str
    identities: Identities | None = None  # made from host if not given

    def __post_init__(self) -> None:
        if self.identities is None:
            object.__setattr__(self, "identities", Identities(self.host))

    def identity(self, pid: int | None, comm: str, cgroup_id: int | None = None,
                 nspid: int | None = None) -> dict:
        """The identity fields (docs/format.md) of a record made by `pid`;
        `cgroup_id`, `nspid`: what BPF read of it, if it did."""
        return self.identities.identity(pid, comm, cgroup_id, nspid)  # type: ignore[union-attr]
