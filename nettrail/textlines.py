"""The seed tools' text views of nettrail's records (docs/format.md shapes),
for pipes and grep: tcptop-style snapshots per interval, tcplife-style
lines per closed session, gethostlatency-style lines per lookup.

One line per row, columns separated by spaces, the free-text field last
where there is one (a lookup's name); bytes exact, times local HH:MM:SS.
Used by the live text views (`nettrail top|life|dns`) and by `nettrail show`
on a finished capture. Every text field from the logs goes through
printable(): a process chooses its name, a resolver's caller the name."""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from dataclasses import dataclass

from nettrail.units import printable

VIEWS = {"top": "bandwidth", "life": "sessions", "dns": "dns"}  # view -> probe
# -s KEY: tcptop's own words (sent, received) too
SORT_KEYS = {"all": ("rx_bytes", "tx_bytes"), "rx": ("rx_bytes",), "tx": ("tx_bytes",),
             "received": ("rx_bytes",), "sent": ("tx_bytes",)}
DEFAULT_ROWS = 20
ADDRESS_WIDTH = 22

TOP_HEADER = (f"{'PID':>7} {'COMM':15} {'LADDR':{ADDRESS_WIDTH}} {'RADDR':{ADDRESS_WIDTH}} "
              f"{'RX_BYTES':>10} {'TX_BYTES':>10}")
LIFE_HEADER = (f"{'TIME':8} {'PID':>7} {'COMM':15} {'LADDR':15} {'LPORT':>5} {'RADDR':15} "
               f"{'RPORT':>5} {'TX_BYTES':>10} {'RX_BYTES':>10} {'MS':>10} {'END':8} RETRANS")
DNS_HEADER = f"{'TIME':8} {'PID':>7} {'COMM':15} {'LATms':>10} {'OUTCOME':14} NAME"
HEADERS = {"top": TOP_HEADER, "life": LIFE_HEADER, "dns": DNS_HEADER}
_ABSENT = object()  # a field this log does not have


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


@dataclass(frozen=True)
class Filters:
    """Which records a view shows. A filter on a field a log does not have
    (a port for lookups, a name for sessions) does not apply to that log."""

    pids: frozenset[int] = frozenset()
    comms: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()        # substrings, any case
    ports: frozenset[int] = frozenset()
    netns: frozenset[int] = frozenset()
    containers: tuple[str, ...] = ()   # id prefixes, as `docker ps` shortens them

    def match(self, r: dict) -> bool:
        """`r`: a dict as the capture writes it, or a reader's record (both
        have .get)."""
        if self.pids and r.get("pid") not in self.pids:
            return False
        if self.comms and r.get("comm") not in self.comms:
            return False
        name = r.get("name", _ABSENT)
        if self.names and name is not _ABSENT and not any(
                n in str(name).lower() for n in self.names):
            return False
        lport = r.get("lport", _ABSENT)
        if self.ports and lport is not _ABSENT and not {lport, r["rport"]} & self.ports:
            return False
        netns = r.get("netns", _ABSENT)
        if self.netns and netns is not _ABSENT and netns not in self.netns:
            return False
        return not self.containers or any(
            str(r.get("container") or "").startswith(c) for c in self.containers)


def _pid(r: dict) -> str:
    return "-" if r.get("pid") is None else str(r["pid"])


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def top_snapshot(records: Iterable[dict], ts: float, interval: int, count: int | None,
                 sort: str = "all", rows: int = DEFAULT_ROWS) -> list[str]:
    """One interval's bandwidth records as a tcptop screen: a clock line,
    the header, the `rows` busiest connections by `sort`."""
    fields = SORT_KEYS[sort]
    records = list(records)
    top = heapq.nlargest(rows, records, key=lambda r: sum(r[f] for f in fields))
    rx, tx = sum(r["rx_bytes"] for r in records), sum(r["tx_bytes"] for r in records)
    of = f"/{count}" if count else ""
    lines = [f"{clock(ts)} interval {interval}{of}: {len(records)} connections, "
             f"rx {rx} B, tx {tx} B", TOP_HEADER]
    lines += [printable(f"{_pid(r):>7} {r['comm']:15} "
                        f"{_endpoint(r['laddr'], r['lport']):{ADDRESS_WIDTH}} "
                        f"{_endpoint(r['raddr'], r['rport']):{ADDRESS_WIDTH}} "
                        f"{r['rx_bytes']:>10} {r['tx_bytes']:>10}") for r in top]
    return lines


def life_line(r: dict) -> str | None:
    """A closed session as tcplife prints it, with how it ended and its
    retransmitted segments; None for a session still open at the end."""
    if r.get("state") != "closed":
        return None
    ms = "-" if r.get("duration_ms") is None else f"{r['duration_ms']:.2f}"
    retrans = "-" if r.get("retrans_segs") is None else str(r["retrans_segs"])
    return printable(f"{clock(r['ts'])} {_pid(r):>7} {r['comm']:15} {r['laddr']:15} "
                     f"{r['lport']:>5} {r['raddr']:15} {r['rport']:>5} {r['tx_bytes']:>10} "
                     f"{r['rx_bytes']:>10} {ms:>10} {r.get('end') or '-':8} {retrans}")


def dns_outcome(r: dict) -> str:
    if r["pending"]:
        return "pending"
    return "ok" if r["ok"] else str(r.get("error") or "failed")


def dns_line(r: dict) -> str | None:
    """A lookup as gethostlatency prints it, with its outcome; None for a
    query a libc lookup sent (that lookup has its own line)."""
    if r.get("call_ts") is not None:
        return None
    return printable(f"{clock(r['ts'])} {_pid(r):>7} {r['comm']:15} "
                     f"{r['latency_ms']:>10.2f} {dns_outcome(r):14} {r['name']}")


LINE_VIEWS = {"life": life_line, "dns": dns_line}
