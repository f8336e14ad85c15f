"""tcplife.jsonl: one line per TCP session that closed during the window,
plus one per session still open at its end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec

from nettrail.format.fields import MAX_COUNTER, MAX_TS, Field, count, number, text
from nettrail.format.log import CONNECTION, IDENTITY, Log, is_loopback, kind, pick, timestamp

STATES = ("closed", "open")
ENDS = ("normal", "reset", "refused", "timeout")
FAILED_ENDS = ("refused", "reset", "timeout")  # a session whose work failed

FIELDS = (
    kind("session"),
    timestamp("when the session closed (`state: closed`) or when the window ended "
              "(`state: open`)"),
    *IDENTITY,
    *CONNECTION,
    count("tx_bytes", "payload bytes sent (and acknowledged) over the session's whole life, "
          "from TCP's own counters, each byte once (no SYN/FIN, no retransmissions). For open "
          "sessions: so far"),
    count("rx_bytes", "payload bytes received over the session's whole life, counted like "
          "`tx_bytes`"),
    count("retrans_segs", "segments retransmitted over the session's life, `null` if unknown",
          nullable=True),
    count("srtt_us", "smoothed RTT at the end (or now, for open sessions), µs, `null` if "
          "unknown", nullable=True),
    number("opened_at", "when the session opened; `null` if it opened before the window",
           nullable=True, max=MAX_TS),
    number("duration_ms", "`ts − opened_at` in ms; `null` if the session opened before the "
           "window", nullable=True),
    text("state", "`closed` or `open`", vocabulary=STATES),
    text("end", "how a closed session ended: `normal` (FIN), `reset` (RST sent or received "
         "after it was established), `refused` (the connect was answered with RST), "
         "`timeout` (the SYN was never answered, or the connection timed out); `null` for "
         "open sessions", nullable=True, vocabulary=ENDS),
    # added within /2 (issue 19): older lines lack them, read as null
    count("connect_us", "how long the handshake took, µs: `client`: from the SYN sent to "
          "established, or to giving up (`end: timeout`/`refused`); `server`: the handshake's "
          "own RTT sample, from our SYN-ACK to the ACK that completed it, which includes every "
          "wait for a full accept queue (ms resolution when read off a TCP timestamp). `null` "
          "if the session opened before the window, its handshake has not ended, or TCP took "
          "no sample", nullable=True, required=False),
    count("syn_retrans_segs", "SYNs (`client`) or SYN-ACKs (`server`) sent again before the "
          "handshake ended; `null` when `connect_us` is unknown for the same reasons",
          nullable=True, required=False),
    count("min_rtt_us", "the lowest RTT TCP measured (tcp_info's `min_rtt`, a windowed "
          "minimum), µs; `null` if none. A `server` session's `srtt_us` is `null` where its "
          "handshake waited (a SYN-ACK resent, or `connect_us` over twice `min_rtt_us` plus "
          "1 ms): an accepted socket's first RTT sample is its handshake; this is the path's "
          "RTT then", nullable=True, required=False),
)

V1_FIELDS = (*pick(FIELDS, "ts pid comm family laddr lport raddr rport tx_bytes rx_bytes "
                   "opened_at duration_ms state"),)

DOC_ROWS = (("`pid`, `comm` …", "the process that owns the socket: the one that connected "
             "it, closed it, or was first found holding it (docs/probes.md). For accepted "
             "connections that is the server, never the task that happened to run when the "
             "handshake completed. `pid` is `null` (and `comm` empty) if no process was known "
             "to hold the socket"),)


def seen_from_both_ends(side: str | None, raddr: str) -> bool:
    """A server's session with a loopback client: the client's own session is
    in the same log, so a failure of theirs is counted once, at the client."""
    return side == "server" and is_loopback(raddr)


def count_headline(headline: Any, records: Sequence, get: Callable[..., Callable]) -> None:
    headline.sessions += len(records)
    end_of, ends_of = get("end"), get("side", "raddr")
    headline.failed_sessions += sum(not seen_from_both_ends(*ends_of(r)) for r in records
                                    if end_of(r) in FAILED_ENDS)


# Session lines a capture writes per interval before it summarises (capture
# --session-lines); past them, sessions are counted in the summary log instead
INTERVAL_LINES = 20_000
# Distinct summary records an interval holds, each fold (docs/format.md)
SUMMARY_KEYS = 10_000
DURATION_BUCKETS = 64  # log2 buckets of µs: 2^63 µs is far past any session

SUMMARY_FIELDS = (
    kind("session_summary"),
    timestamp("the end of the interval whose sessions this record counts"),
    count("interval", "the interval (1-based) whose sessions past its line budget this "
          "record counts"),
    *IDENTITY,
    *pick(CONNECTION, "netns family side", nullable=True),
    text("raddr", "the remote address the sessions had; `null` on a record that folds "
         "remotes together (the interval had more than its bound of distinct records)",
         nullable=True),
    count("port", "the service port: the remote's (`rport`) for `client` sessions (and where "
          "`side` is `null`), the local (`lport`) for `server` ones; `null` where `raddr` is",
          nullable=True, max=65535),
    *pick(FIELDS, "state end"),
    Field("sessions", int, "sessions counted here instead of one line each (at least 1)",
          min=1, max=MAX_COUNTER),
    count("tx_bytes", "their `tx_bytes` summed"),
    count("rx_bytes", "their `rx_bytes` summed"),
    count("retrans_segs", "their `retrans_segs` summed (unknown counts as 0)"),
    count("retrans_sessions", "how many of them retransmitted at all"),
    count("syn_retrans_segs", "their `syn_retrans_segs` summed (unknown counts as 0)"),
    count("max_srtt_us", "the highest `srtt_us` among them, `null` if none was known",
          nullable=True),
    count("max_connect_us", "the highest `connect_us` among them, `null` if none was known",
          nullable=True),
    count("before_window", "how many of them opened before the window (no `opened_at`, no "
          "duration)"),
    number("first_ts", "the earliest `opened_at` among them (`ts` for those opened before "
           "the window)", max=MAX_TS),
    number("last_ts", "the latest `ts` among them", max=MAX_TS),
    Field("durations_log2_us", list, "a duration sketch of those opened in the window: "
          "entry `i` counts sessions whose `duration_ms` × 1000 rounds down into "
          "[2^i, 2^(i+1)) µs (entry 0 also holds those under 1 µs); trailing zero entries "
          "are left out", max_len=DURATION_BUCKETS,
          decoded_as=Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]],
                               msgspec.Meta(max_length=DURATION_BUCKETS)],
          schema={"type": "array", "maxItems": DURATION_BUCKETS,
                  "items": {"type": "integer", "minimum": 0}}),
)


def count_summary_headline(headline: Any, records: Sequence,
                           get: Callable[..., Callable]) -> None:
    for n, end in map(get("sessions", "end"), records):
        headline.sessions += n
        headline.summarised_sessions += n
        headline.failed_sessions += n if end in FAILED_ENDS else 0


SUMMARY = Log("sessions", 2, "tcplife_summary.jsonl", "session_summary",
              "Sessions past the capture's per-interval line budget, counted: one line per "
              "interval and (identity, remote address, service port, end) instead of one "
              "per session; written only when an interval exceeds its budget.",
              SUMMARY_FIELDS, (), line_budget=1_000_000, max_bytes=1 << 30,
              count=count_summary_headline)

LOG = Log("sessions", 2, "tcplife.jsonl", "session",
          "One line per TCP session that closed during the window, plus, at the end, one line "
          "per session still open (in any network namespace).",
          FIELDS, V1_FIELDS, line_budget=1_000_000, max_bytes=2 << 30, count=count_headline,
          doc_rows=DOC_ROWS, summary=SUMMARY)
