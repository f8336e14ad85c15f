"""Python mirror of bpf/nettrail.h, and the decoding of each struct into a log
record (field order as docs/format.md)."""

from __future__ import annotations

import ctypes
import errno
import functools
import socket
import struct
from ctypes import c_char, c_int32, c_uint8, c_uint16, c_uint32, c_uint64
from typing import NamedTuple

from nettrail.capture.clock import Clock

CACHE_SIZE = 65536
COMM_LEN = 16
HOST_LEN = 256
MAX_ADDRS = 8
MAX_PIDS = 16

STAT_RINGBUF_FULL, STAT_MAP_FULL = 0, 1
SESSION_CLOSED = 1  # enum session_state; anything else is open
FUNCTIONS = {1: "getaddrinfo", 2: "gethostbyname", 3: "gethostbyname2",
             4: "gethostbyname_r", 5: "gethostbyname2_r"}
FN_GETADDRINFO = 1
EAI_NAMES = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
H_ERRNO_NAMES = {1: "HOST_NOT_FOUND", 2: "TRY_AGAIN", 3: "NO_RECOVERY", 4: "NO_DATA"}


class ConnKey(ctypes.Structure):
    _fields_ = [("laddr", c_uint8 * 16), ("raddr", c_uint8 * 16), ("pid", c_uint32),
                ("lport", c_uint16), ("rport", c_uint16), ("family", c_uint16),
                ("pad", c_uint16)]


class ConnVal(ctypes.Structure):
    _fields_ = [("rx_bytes", c_uint64), ("tx_bytes", c_uint64), ("comm", c_char * COMM_LEN)]


class ConnRow(ctypes.Structure):
    _fields_ = [("key", ConnKey), ("pad", c_uint32), ("val", ConnVal)]


class SessionEvent(ctypes.Structure):
    _fields_ = [("ts_ns", c_uint64), ("opened_ns", c_uint64), ("tx_bytes", c_uint64),
                ("rx_bytes", c_uint64), ("laddr", c_uint8 * 16), ("raddr", c_uint8 * 16),
                ("pid", c_uint32), ("lport", c_uint16), ("rport", c_uint16),
                ("family", c_uint16), ("state", c_uint8), ("pad", c_uint8),
                ("comm", c_char * COMM_LEN)]


class DnsEvent(ctypes.Structure):
    _fields_ = [("start_ns", c_uint64), ("end_ns", c_uint64), ("pid", c_uint32),
                ("ret", c_int32), ("h_errno", c_int32), ("function", c_uint8),
                ("naddrs", c_uint8), ("pad", c_uint16), ("families", c_uint16 * MAX_ADDRS),
                ("addrs", (c_uint8 * 16) * MAX_ADDRS), ("comm", c_char * COMM_LEN),
                ("host", c_char * HOST_LEN)]


class DnsLookup(ctypes.Structure):
    _fields_ = [("start_ns", c_uint64), ("result_pp", c_uint64), ("herrno_p", c_uint64),
                ("inner_herrno_p", c_uint64), ("inner_herrno", c_int32), ("depth", c_uint32),
                ("pid", c_uint32), ("function", c_uint8), ("pad", c_uint8 * 3),
                ("comm", c_char * COMM_LEN), ("host", c_char * HOST_LEN)]


MIRRORS = {"conn_key": ConnKey, "conn_val": ConnVal, "conn_row": ConnRow,
           "session_event": SessionEvent, "dns_event": DnsEvent, "dns_lookup": DnsLookup}

_SCALARS = {c_uint64: "Q", c_uint32: "I", c_int32: "i", c_uint16: "H", c_uint8: "B"}


def _layout(ctype: type[ctypes.Structure]) -> str:
    """A struct-module format with exactly a mirror's layout (so the mirror
    stays the one description of each C struct): bytes for byte arrays,
    explicit padding where C aligns."""
    fmt, pos = "", 0
    for name, ftype in ctype._fields_:
        offset = getattr(ctype, name).offset
        fmt += f"{offset - pos}x" if offset > pos else ""
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
DNS = struct.Struct("<" + _layout(DnsEvent))


class Conn(NamedTuple):
    """One connection's bytes in an interval (bandwidth)."""

    pid: int
    comm: str
    family: int
    laddr: str
    lport: int
    raddr: str
    rport: int
    rx_bytes: int
    tx_bytes: int


# Names and addresses repeat from event to event: convert each once.
@functools.lru_cache(maxsize=CACHE_SIZE)
def text(raw: bytes) -> str:
    """A kernel or user C string as text; undecodable bytes become U+FFFD."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@functools.lru_cache(maxsize=CACHE_SIZE)
def address(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw[:16])


FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}


def _ms(ns: int) -> float:
    """Nanoseconds as milliseconds with microsecond resolution."""
    return ns // 1000 / 1000


def _conn(laddr: bytes, raddr: bytes, pid: int, lport: int, rport: int, family: int,
          rx: int, tx: int, comm: bytes) -> Conn:
    return Conn(pid, text(comm), family, address(family, laddr), lport,
                address(family, raddr), rport, rx, tx)


def conns_from_maps(keys: bytes, values: bytes) -> list[Conn]:
    """Connections from a hash map's batch of keys and values."""
    return [_conn(la, ra, pid, lp, rp, fam, rx, tx, comm)
            for (la, ra, pid, lp, rp, fam, _), (rx, tx, comm)
            in zip(CONN_KEY.iter_unpack(keys), CONN_VAL.iter_unpack(values))]


def conns_from_rows(rows: bytes) -> list[Conn]:
    """Connections as the socket-storage iterator writes them (struct conn_row)."""
    return [_conn(la, ra, pid, lp, rp, fam, rx, tx, comm)
            for la, ra, pid, lp, rp, fam, _, _, rx, tx, comm in CONN_ROW.iter_unpack(rows)]


def bandwidth_record(c: Conn, ts: float, interval: int) -> dict:
    return {"ts": ts, "interval": interval, "pid": c.pid, "comm": c.comm,
            "family": FAMILIES[c.family], "laddr": c.laddr, "lport": c.lport,
            "raddr": c.raddr, "rport": c.rport, "rx_bytes": c.rx_bytes, "tx_bytes": c.tx_bytes}


def session_records(blob: bytes, clock: Clock) -> list[dict]:
    """Records from struct session_event bytes (ring buffer or iterator)."""
    out, unix = [], clock.unix
    for (ts, opened, tx, rx, laddr, raddr, pid, lport, rport, family, state, _pad,
         comm) in SESSION.iter_unpack(blob):
        out.append({"ts": unix(ts), "pid": pid or None, "comm": text(comm),
                    "family": FAMILIES[family], "laddr": address(family, laddr),
                    "lport": lport, "raddr": address(family, raddr), "rport": rport,
                    "tx_bytes": tx, "rx_bytes": rx,
                    "opened_at": unix(opened) if opened else None,
                    "duration_ms": _ms(ts - opened) if opened else None,
                    "state": "closed" if state == SESSION_CLOSED else "open"})
    return out


def dns_error(function: int, ret: int, h_errno: int) -> str | None:
    """The failure's name: EAI_* for getaddrinfo, h_errno or errno for the others."""
    if ret == 0:
        return None
    if function == FN_GETADDRINFO:
        return EAI_NAMES.get(ret, f"EAI_{ret}")
    if h_errno in H_ERRNO_NAMES:
        return H_ERRNO_NAMES[h_errno]
    return errno.errorcode.get(ret, "UNKNOWN") if ret > 0 else "UNKNOWN"


def dns_records(blob: bytes, clock: Clock) -> list[dict]:
    """Records from struct dns_event bytes."""
    out = []
    for start, end, pid, ret, h_errno, function, naddrs, _pad, *rest in DNS.iter_unpack(blob):
        families, (addrs, comm, host) = rest[:MAX_ADDRS], rest[MAX_ADDRS:]
        addresses: list[str] = []
        for i in range(min(naddrs, MAX_ADDRS)):
            addr = address(families[i], addrs[16 * i:16 * i + 16])
            if addr not in addresses:
                addresses.append(addr)
        out.append({"ts": clock.unix(start), "pid": pid, "comm": text(comm),
                    "host": text(host), "function": FUNCTIONS.get(function, "?"),
                    "latency_ms": _ms(end - start), "ok": ret == 0,
                    "error": dns_error(function, ret, h_errno), "addresses": addresses,
                    "pending": False})
    return out


def pending_record(lookup: DnsLookup, clock: Clock, now_ns: int) -> dict:
    """A lookup still unanswered at window end; latency_ms is its age."""
    return {"ts": clock.unix(lookup.start_ns), "pid": lookup.pid, "comm": text(lookup.comm),
            "host": text(lookup.host), "function": FUNCTIONS.get(lookup.function, "?"),
            "latency_ms": _ms(now_ns - lookup.start_ns), "ok": False,
            "error": None, "addresses": [], "pending": True}
