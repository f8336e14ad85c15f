"""tcptop.jsonl: per interval, one line per (process, TCP connection) that
moved data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nettrail.format.fields import count, number
from nettrail.format.log import CONNECTION, IDENTITY, Log, kind, pick, timestamp

MAX_INTERVAL_S = 86400.0

FIELDS = (
    kind("bandwidth"),
    timestamp("end of the interval"),
    count("interval", "1-based interval number (at most meta.json's `count`)"),
    number("interval_s", "the interval's real length in seconds (intervals under load are not "
           "exactly equal: divide by this for a rate)", max=MAX_INTERVAL_S),
    *IDENTITY,
    *CONNECTION,
    count("rx_bytes", "payload bytes that crossed the network on that connection in the "
          "interval, each byte once: no SYN/FIN, no retransmissions, whether or not the "
          "application has read them yet (from the kernel's own TCP counters: "
          "`bytes_received`, `bytes_acked`)"),
    count("tx_bytes", "payload bytes sent and acknowledged on that connection in the interval, "
          "counted like `rx_bytes`"),
    count("retrans_bytes", "bytes retransmitted in the interval, `null` if unknown",
          nullable=True),
    count("srtt_us", "TCP's smoothed round-trip time at the end of the interval, µs, `null` "
          "if unknown", nullable=True),
    # added within /2 (issue 19): older lines lack them, read as null
    count("busy_us", "µs of the interval the connection had data to send (tcp_info's "
          "`busy_time`: it includes the two limited times below); `null` where not taken "
          "(docs/probes.md) or in older `/2` captures", nullable=True, required=False),
    count("rwnd_limited_us", "µs of the interval it could not send because the peer's receive "
          "window was full (tcp_info's `rwnd_limited`: a slow reader at the other end); "
          "`null` as `busy_us`", nullable=True, required=False),
    count("sndbuf_limited_us", "µs of the interval it could not send because its own send "
          "buffer was full (tcp_info's `sndbuf_limited`); `null` as `busy_us`",
          nullable=True, required=False),
    count("retrans_segs", "segments retransmitted in the interval (`total_retrans`); `null` "
          "in older `/2` captures", nullable=True, required=False),
    count("lost_segs", "segments TCP marked lost in the interval (`tp->lost`, which counts "
          "lost retransmissions again); `null` in older `/2` captures", nullable=True,
          required=False),
    count("rto_timeouts", "retransmission timeouts in the interval (`total_rto`); `null` where "
          "the kernel does not count them (before 6.7)", nullable=True, required=False),
    count("delivery_bytes_per_s", "TCP's last delivery-rate sample when read (tcp_info's "
          "`delivery_rate`), bytes/s; `null` if none", nullable=True, required=False),
    count("sent_segs", "segments sent in the interval, retransmissions included (tcp_info's "
          "`segs_out`): `retrans_segs / sent_segs` is the share resent; `null` in captures made "
          "before it was added", nullable=True, required=False),
)

V1_FIELDS = (*pick(FIELDS, "ts interval"), *pick(FIELDS, "pid", nullable=False),
             *pick(FIELDS, "comm family laddr lport raddr rport rx_bytes tx_bytes"))


def count_headline(headline: Any, records: Sequence, get: Callable[..., Callable]) -> None:
    headline.rx_bytes += sum(map(get("rx_bytes"), records))
    headline.tx_bytes += sum(map(get("tx_bytes"), records))


LOG = Log("bandwidth", 1, "tcptop.jsonl", "bandwidth",
          "One line per (process, TCP connection) that moved data in an interval.",
          FIELDS, V1_FIELDS, line_budget=4_000_000, max_bytes=4 << 30, count=count_headline)
