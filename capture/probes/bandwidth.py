"""bandwidth probe: bytes per (pid, TCP connection) per interval."""

from __future__ import annotations

import ctypes
import platform
import re

from typing import NamedTuple

from nettrail.capture.clock import boot_ns
from nettrail.capture.events import (CONN_KEY, CONN_ROW, CONN_VAL, FAMILIES, RecordContext,
                                     address, text)
from nettrail.capture.libbpf import map_batch, map_update
from nettrail.capture.loader import HookSet, Probe

BATCH = 4096  # entries read per batch call


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


def bandwidth_record(ctx: RecordContext, c: Conn, ts: float, interval: int,
                     interval_s: float) -> dict:
    return {"kind": "bandwidth", "ts": ts, "interval": interval, "interval_s": interval_s,
            **ctx.identity(c.pid, c.comm), "netns": None, "family": FAMILIES[c.family],
            "laddr": c.laddr, "lport": c.lport, "raddr": c.raddr, "rport": c.rport,
            "side": None, "rx_bytes": c.rx_bytes, "tx_bytes": c.tx_bytes,
            "retrans_bytes": None, "srtt_us": None}


def kernel_before(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(m) and (int(m[1]), int(m[2])) < (major, minor)


def _merge(conns: list[Conn]) -> list[Conn]:
    """Sum entries of the same connection (found in both maps, or in a map
    and a socket's storage)."""
    merged: dict[tuple, Conn] = {}
    for c in conns:
        key = (c.pid, c.family, c.laddr, c.lport, c.raddr, c.rport)
        seen = merged.get(key)
        merged[key] = c if seen is None else seen._replace(
            rx_bytes=seen.rx_bytes + c.rx_bytes, tx_bytes=seen.tx_bytes + c.tx_bytes)
    return list(merged.values())


class BandwidthProbe(Probe):
    name = "bandwidth"
    hook_sets = (
        HookSet("tp_btf/sock_send_length+sock_recv_length (socket storage)",
                ("tp_send", "tp_recv", "tp_close"), ("dump_conns", "peek_conns")),
        HookSet("fexit/tcp_sendmsg+tcp_recvmsg", ("fexit_send", "fexit_recv")),
        HookSet("kprobe/tcp_sendmsg+tcp_recvmsg",
                ("kp_send", "krp_send", "kp_recv", "krp_recv")),
    )
    _maps = ("conns_a", "conns_b")

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self._slot = 0
        self._interval_start_ns = boot_ns()

    def rodata(self, hooks: HookSet) -> dict[str, bytes]:
        return {**super().rodata(hooks), "recv_flags_arg5": bytes([kernel_before(5, 19)])}

    def _counts_in_sockets(self) -> bool:
        return self.hooks is not None and "dump_conns" in self.hooks.on_demand

    def shared_counts_fd(self) -> int | None:
        """The per-socket counters the sessions probe may read owners from."""
        return self.obj.map_fd("sock_counts") if self._counts_in_sockets() else None

    def _read_map(self, slot: int, delete: bool) -> list[Conn]:
        keys, values = map_batch(self.obj.map_fd(self._maps[slot]), CONN_KEY.size,
                                 CONN_VAL.size, BATCH, delete)
        return conns_from_maps(keys, values)

    def _sockets(self, program: str) -> list[Conn]:
        """Counts kept in socket storage (typed hooks only), read by an iterator."""
        if not self._counts_in_sockets():
            return []
        return conns_from_rows(self.obj.read_iter(program, over_map="sock_counts"))

    def take_interval(self) -> list[Conn]:
        """Switch the slow path to the other map, empty the one it left, and
        take the socket counters. Counts added late stay for the next drain."""
        old, self._slot = self._slot, self._slot ^ 1
        map_update(self.obj.map_fd("bw_slot"), ctypes.c_uint32(0), ctypes.c_uint32(self._slot))
        return _merge(self._read_map(old, delete=True) + self._sockets("dump_conns"))

    def take_final(self) -> list[Conn]:
        """The last interval: everything left."""
        return _merge(self._read_map(self._slot, delete=True)
                      + self._read_map(self._slot ^ 1, delete=True)
                      + self._sockets("dump_conns"))

    def interval_records(self, interval: int, last: bool) -> list[dict]:
        conns = self.take_final() if last else self.take_interval()
        now_ns = boot_ns()
        ts, length_s = self.ctx.clock.unix(now_ns), (now_ns - self._interval_start_ns) / 1e9
        self._interval_start_ns = now_ns
        return [bandwidth_record(self.ctx, c, ts, interval, round(length_s, 6)) for c in conns]

    def peek(self) -> list[Conn]:
        """The current interval so far, without clearing it (live view)."""
        return _merge(self._read_map(self._slot, delete=False) + self._sockets("peek_conns"))
