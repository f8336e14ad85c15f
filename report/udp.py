"""The udp log (`--probes +udp`): UDP flows per process, remote endpoint and
service port for their table, and each line's bytes for the bandwidth charts
(a series per owner and protocol, marked UDP or by the service it names).
Bounded as the connection table (HeavyHitters)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nettrail.report.bandwidth import ChartLine, Slot
from nettrail.report.bounded import HeavyHitters
from nettrail.report.labels import (endpoint, group_label, owner_label, ports_side,
                                    process_label, qualified)
from nettrail.units import printable

KEEP_FLOWS = 5_000
TABLE_ROWS = 500
# UDP services named by their well-known port (either end's)
SERVICES = {443: "QUIC", 53: "DNS", 123: "NTP", 514: "syslog", 4789: "VXLAN",
            8125: "statsd", 51820: "WireGuard"}
PROTOCOL = "UDP"


def service_of(lport: int, rport: int) -> str:
    """QUIC for UDP 443 and the like; else UDP."""
    return SERVICES.get(rport) or SERVICES.get(lport) or PROTOCOL


def series_label(r: Any) -> str:
    """A UDP line's series in the bandwidth charts: its owner, marked."""
    return f"{owner_label(r)} · {service_of(r.lport, r.rport)}"


@dataclass
class FlowStats:
    weight: float = 0
    error: float = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_datagrams: int = 0
    tx_datagrams: int = 0
    dropped_datagrams: int = 0
    flows: dict[tuple[str, int], None] = field(default_factory=dict)  # remote ends, a few
    first_ts: float = math.inf
    last_ts: float = -math.inf


@dataclass
class UdpRow:
    """UDP flows of one process with one remote end on one service port
    (a server's row: one client address on one of its ports)."""
    host: str | None
    process: str
    group: str | None
    service: str       # QUIC, DNS, … or UDP
    side: str          # from the ports: UDP has no handshake to tell
    remote: str
    port: int
    rx_bytes: int
    tx_bytes: int
    rx_datagrams: int
    tx_datagrams: int
    dropped_datagrams: int
    first_ts: float | None
    last_ts: float | None
    approximate: bool

    @property
    def label(self) -> str:
        return qualified(self.host, self.process)


@dataclass
class Udp:
    captured: bool = False   # some capture ran the udp probe
    lines: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    dropped_datagrams: int = 0
    rows: list[UdpRow] = field(default_factory=list)
    count: int = 0           # rows before the table's cut
    table: HeavyHitters[FlowStats] = field(
        default_factory=lambda: HeavyHitters(KEEP_FLOWS, FlowStats))

    def add(self, host: str | None, r: Any) -> None:
        side = ports_side(r.lport, r.rport)
        client = side == "client"
        key = (host, process_label(r.pid, r.comm), group_label(r),
               service_of(r.lport, r.rport), side,
               printable(endpoint(r.raddr, r.rport) if client else r.raddr),
               r.rport if client else r.lport)
        s = self.table.get(key)
        s.weight += 1
        s.rx_bytes += r.rx_bytes
        s.tx_bytes += r.tx_bytes
        s.rx_datagrams += r.rx_datagrams
        s.tx_datagrams += r.tx_datagrams
        s.dropped_datagrams += r.dropped_datagrams or 0
        s.first_ts = min(s.first_ts, r.first_ts)
        s.last_ts = max(s.last_ts, r.last_ts)
        self.lines += 1
        self.rx_bytes += r.rx_bytes
        self.tx_bytes += r.tx_bytes
        self.dropped_datagrams += r.dropped_datagrams or 0

    def finish(self) -> None:
        self.count = len(self.table) + self.table.dropped
        self.rows = [UdpRow(host, str(process), group, service, side, remote, port,
                            s.rx_bytes, s.tx_bytes, s.rx_datagrams, s.tx_datagrams,
                            s.dropped_datagrams, s.first_ts if s.first_ts != math.inf
                            else None, s.last_ts if s.last_ts != -math.inf else None,
                            bool(s.error))
                     for (host, process, group, service, side, remote, port), s
                     in self.table.top(TABLE_ROWS, key=lambda s: -(s.rx_bytes + s.tx_bytes))]


def udp_lines(udp: Udp, streams: Iterable[tuple["str | None", Iterable[list[Any]], Slot]]
              ) -> Iterator[ChartLine]:
    """Each UDP line into the flow table, and out to the bandwidth charts as
    (host, series label, interval number, its interval, rx, tx)."""
    for host, blocks, (number_of, interval_of) in streams:
        for block in blocks:
            for r in block:
                udp.add(host, r)
                yield host, series_label(r), number_of(r), interval_of(r), r.rx_bytes, r.tx_bytes
    udp.finish()
