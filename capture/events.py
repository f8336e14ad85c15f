"""Python mirror of bpf/nettrail.h, and the decoding of each struct into a log
record (field order as docs/format.md)."""

from __future__ import annotations

import ctypes
import errno
import socket
from ctypes import c_char, c_int32, c_uint8, c_uint16, c_uint32, c_uint64

from capture.clock import Clock

COMM_LEN = 16
HOST_LEN = 256
MAX_ADDRS = 8
MAX_PIDS = 16

STAT_RINGBUF_FULL, STAT_MAP_FULL = 0, 1
SESSION_CLOSED, SESSION_OPEN = 1, 2
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


MIRRORS = {"conn_key": ConnKey, "conn_val": ConnVal, "session_event": SessionEvent,
           "dns_event": DnsEvent, "dns_lookup": DnsLookup}


def text(raw: bytes) -> str:
    """A kernel or user string as text; undecodable bytes become U+FFFD."""
    return raw.decode("utf-8", "replace")


def address(family: int, raw: ctypes.Array) -> str:
    return socket.inet_ntop(family, bytes(raw)[:4 if family == socket.AF_INET else 16])


def family_name(family: int) -> str:
    return "ipv4" if family == socket.AF_INET else "ipv6"


def bandwidth_record(key: ConnKey, val: ConnVal, ts: float, interval: int) -> dict:
    return {"ts": ts, "interval": interval, "pid": key.pid, "comm": text(val.comm),
            "family": family_name(key.family), "laddr": address(key.family, key.laddr),
            "lport": key.lport, "raddr": address(key.family, key.raddr), "rport": key.rport,
            "rx_bytes": val.rx_bytes, "tx_bytes": val.tx_bytes}


def session_record(e: SessionEvent, clock: Clock) -> dict:
    opened = e.opened_ns or None
    return {"ts": clock.unix(e.ts_ns), "pid": e.pid or None, "comm": text(e.comm),
            "family": family_name(e.family), "laddr": address(e.family, e.laddr),
            "lport": e.lport, "raddr": address(e.family, e.raddr), "rport": e.rport,
            "tx_bytes": e.tx_bytes, "rx_bytes": e.rx_bytes,
            "opened_at": clock.unix(opened) if opened else None,
            "duration_ms": round((e.ts_ns - opened) / 1e6, 3) if opened else None,
            "state": "closed" if e.state == SESSION_CLOSED else "open"}


def dns_error(function: int, ret: int, h_errno: int) -> str | None:
    """The failure's name: EAI_* for getaddrinfo, h_errno or errno for the others."""
    if ret == 0:
        return None
    if function == FN_GETADDRINFO:
        return EAI_NAMES.get(ret, f"EAI_{ret}")
    if h_errno in H_ERRNO_NAMES:
        return H_ERRNO_NAMES[h_errno]
    return errno.errorcode.get(ret, "UNKNOWN") if ret > 0 else "UNKNOWN"


def dns_record(e: DnsEvent, clock: Clock) -> dict:
    addresses = []
    for i in range(min(e.naddrs, MAX_ADDRS)):
        addr = address(e.families[i], e.addrs[i])
        if addr not in addresses:
            addresses.append(addr)
    return {"ts": clock.unix(e.start_ns), "pid": e.pid, "comm": text(e.comm),
            "host": text(e.host), "function": FUNCTIONS.get(e.function, "?"),
            "latency_ms": round((e.end_ns - e.start_ns) / 1e6, 3), "ok": e.ret == 0,
            "error": dns_error(e.function, e.ret, e.h_errno), "addresses": addresses,
            "pending": False}


def pending_record(lookup: DnsLookup, clock: Clock, now_ns: int) -> dict:
    """A lookup still unanswered at window end; latency_ms is its age."""
    return {"ts": clock.unix(lookup.start_ns), "pid": lookup.pid, "comm": text(lookup.comm),
            "host": text(lookup.host), "function": FUNCTIONS.get(lookup.function, "?"),
            "latency_ms": round((now_ns - lookup.start_ns) / 1e6, 3), "ok": False,
            "error": None, "addresses": [], "pending": True}
