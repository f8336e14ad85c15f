"""bandwidth probe: payload bytes per (owner, TCP connection) per interval,
from the kernel's own per-socket TCP counters (bpf/bandwidth.bpf.c)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from nettrail.capture.events import (CONN_CHRONO, CONN_KEY, CONN_ROW, CONN_RTO, CONN_VAL,
                                     FAMILIES, SIDES, RecordContext, address, text)
from nettrail.capture.libbpf import map_batch, map_update
from nettrail.capture.loader import (BY_ADDRESS, STATE_MAPS, TCP_COUNTERS, HookSet, Probe,
                                     SharedState)
from nettrail.capture.preflight import BPF_NEEDS, IDENTITY_NEED, tcp_counter_problem

BATCH = 4096  # entries read per batch call
FULL_PASS_EVERY = 10  # passes; the others skip sockets TCP has not stamped lately


class TcpStats(NamedTuple):
    """The kernel's own counters of one connection (tcp_info's), changes in
    an interval; `flags`: enum conn_flags, which are known."""

    flags: int
    busy_us: int
    rwnd_limited_us: int
    sndbuf_limited_us: int
    delivery_bytes_per_s: int
    retrans_segs: int
    lost_segs: int
    rto_count: int
    sent_segs: int = 0

    def then(self, later: TcpStats) -> TcpStats:
        """Two parts of one interval: counts summed, the later rate kept."""
        return TcpStats(self.flags & later.flags, self.busy_us + later.busy_us,
                        self.rwnd_limited_us + later.rwnd_limited_us,
                        self.sndbuf_limited_us + later.sndbuf_limited_us,
                        later.delivery_bytes_per_s or self.delivery_bytes_per_s,
                        self.retrans_segs + later.retrans_segs,
                        self.lost_segs + later.lost_segs, self.rto_count + later.rto_count,
                        self.sent_segs + later.sent_segs)

    def fields(self) -> dict:
        """As the record's fields: what the kernel does not tell is null."""
        chrono, rto = self.flags & CONN_CHRONO, self.flags & CONN_RTO
        return {"busy_us": self.busy_us if chrono else None,
                "rwnd_limited_us": self.rwnd_limited_us if chrono else None,
                "sndbuf_limited_us": self.sndbuf_limited_us if chrono else None,
                "retrans_segs": self.retrans_segs, "lost_segs": self.lost_segs,
                "rto_timeouts": self.rto_count if rto else None,
                "delivery_bytes_per_s": self.delivery_bytes_per_s or None,
                "sent_segs": self.sent_segs}


NO_STATS = TcpStats(0, 0, 0, 0, 0, 0, 0, 0)


class Conn(NamedTuple):
    """One connection's change in an interval."""

    pid: int
    comm: str
    netns: int
    family: int
    laddr: str
    lport: int
    raddr: str
    rport: int
    side: int
    rx_bytes: int
    tx_bytes: int
    retrans_bytes: int
    srtt_us: int
    cgroup_id: int
    nspid: int
    stats: TcpStats = NO_STATS

    @property
    def key(self) -> tuple:
        return (self.pid, self.netns, self.family, self.laddr, self.lport, self.raddr,
                self.rport)


def _conn(key: tuple, val: tuple) -> Conn:
    """A Conn from struct conn_key's and struct conn_val's fields."""
    laddr, raddr, pid, netns, lport, rport, family, _pad = key
    (rx, tx, retrans, cgroup_id, srtt_us, nspid, side, flags, _pad, comm, busy_us, rwnd_us,
     sndbuf_us, rate, retrans_segs, lost_segs, rto_count, segs_out) = val
    return Conn(pid, text(comm), netns, family, address(family, laddr), lport,
                address(family, raddr), rport, side, rx, tx, retrans, srtt_us, cgroup_id, nspid,
                TcpStats(flags, busy_us, rwnd_us, sndbuf_us, rate, retrans_segs, lost_segs,
                         rto_count, segs_out))


KEY_FIELDS = 8  # struct conn_key's, first in struct conn_row


def conns_from_maps(keys: bytes, values: bytes) -> list[Conn]:
    """Connections closed in the interval, from a hash map's batch."""
    return [_conn(key, val)
            for key, val in zip(CONN_KEY.iter_unpack(keys), CONN_VAL.iter_unpack(values))]


def conns_from_rows(rows: bytes) -> list[Conn]:
    """Connections as the pass writes them (struct conn_row)."""
    return [_conn(row[:KEY_FIELDS], row[KEY_FIELDS:]) for row in CONN_ROW.iter_unpack(rows)]


def merge(conns: list[Conn]) -> list[Conn]:
    """One entry per connection: the same connection closed after a pass
    reported it, or found in both maps, is summed (the latest RTT kept)."""
    merged: dict[tuple, Conn] = {}
    for c in conns:
        seen = merged.get(c.key)
        merged[c.key] = c if seen is None else c._replace(
            rx_bytes=seen.rx_bytes + c.rx_bytes, tx_bytes=seen.tx_bytes + c.tx_bytes,
            retrans_bytes=seen.retrans_bytes + c.retrans_bytes,
            srtt_us=c.srtt_us or seen.srtt_us, side=c.side or seen.side,
            stats=seen.stats.then(c.stats))
    return list(merged.values())


def bandwidth_record(ctx: RecordContext, c: Conn, ts: float, interval: int,
                     interval_s: float) -> dict:
    return {"kind": "bandwidth", "ts": ts, "interval": interval, "interval_s": interval_s,
            **ctx.identity(c.pid or None, c.comm, c.cgroup_id, c.nspid), "netns": c.netns or None,
            "family": FAMILIES[c.family], "laddr": c.laddr, "lport": c.lport,
            "raddr": c.raddr, "rport": c.rport, "side": SIDES.get(c.side),
            "rx_bytes": c.rx_bytes, "tx_bytes": c.tx_bytes,
            "retrans_bytes": c.retrans_bytes, "srtt_us": c.srtt_us or None,
            **c.stats.fields()}


class BandwidthProbe(Probe):
    name = "bandwidth"
    hook_sets = (HookSet(TCP_COUNTERS, ("tp_state",),
                         ("pass_conns", "pass_all", "pass_last", "peek_conns")),)
    # by address, a socket's state goes at its destruction
    hook_sets += (hook_sets[0].untrusted(BY_ADDRESS, ("tp_destroy",)),)
    _maps = ("conns_a", "conns_b")
    kernel_problem = staticmethod(tcp_counter_problem)
    capabilities = (*BPF_NEEDS, IDENTITY_NEED)
    claims_owners = True

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self._slot = 0
        self._carried: list[Conn] = []
        self._passes = 0

    def start(self, started: Mapping[str, Probe]) -> None:
        """Attach, then a first pass: every socket held now gets its counters
        as the baseline (bytes before the window are not the window's)."""
        super().start(started)
        if self.running:
            self._carried = self._pass()

    def shared_state(self) -> SharedState | None:
        """The per-socket state the sessions probe shares (owners, sides)."""
        if not self.running:
            return None
        assert self.hooks is not None
        return SharedState({name: self.obj.map_fd(name) for name in STATE_MAPS},
                           self.hooks.file_sockets_untrusted)

    def _read_map(self, slot: int, delete: bool) -> list[Conn]:
        keys, values = map_batch(self.obj.map_fd(self._maps[slot]), CONN_KEY.size,
                                 CONN_VAL.size, BATCH, delete)
        return conns_from_maps(keys, values)

    def _pass(self, last: bool = False) -> list[Conn]:
        """A pass that takes each held socket's change. Every tenth and the
        last read every socket; the others pass over the quiet ones."""
        program = ("pass_last" if last else
                   "pass_all" if self._passes % FULL_PASS_EVERY == 0 else "pass_conns")
        self._passes += 1
        return conns_from_rows(self.obj.read_iter(program, row_bytes=CONN_ROW.size))

    def take_interval(self, last: bool = False) -> list[Conn]:
        """Switch the close path to the other map, empty the one it left, and
        take every held socket's change. Counts added late stay for the next
        drain."""
        old, self._slot = self._slot, self._slot ^ 1
        map_update(self.obj.map_fd("bw_slot"), ctypes.c_uint32(0), ctypes.c_uint32(self._slot))
        carried, self._carried = self._carried, []
        return merge(carried + self._read_map(old, delete=True) + self._pass(last))

    def take_final(self) -> list[Conn]:
        """The last interval: everything left, every held socket read."""
        return self.take_interval(last=True) + self._read_map(self._slot, delete=True)

    def interval_records(self, interval: int, last: bool) -> Iterator[dict]:
        conns = merge(self.take_final()) if last else self.take_interval()
        ts, length_s = self.interval_end()
        # made as they are written: a churning interval has tens of thousands
        return (bandwidth_record(self.ctx, c, ts, interval, length_s) for c in conns)

    def peek(self) -> list[Conn]:
        """The current interval so far, without taking it (live view)."""
        return merge(self._carried + self._read_map(self._slot, delete=False)
                     + conns_from_rows(self.obj.read_iter("peek_conns", row_bytes=CONN_ROW.size)))
