"""udp.jsonl (`--probes +udp`): per interval, one line per (process, UDP
flow) that moved datagrams."""

from __future__ import annotations

from nettrail.format.fields import MAX_TS, count, number
from nettrail.format.log import CONNECTION, IDENTITY, Log, kind, no_headline, pick, timestamp
from nettrail.format.logs.bandwidth import MAX_INTERVAL_S

FIELDS = (
    kind("udp"),
    timestamp("end of the interval"),
    count("interval", "1-based interval number (at most meta.json's `count`)"),
    number("interval_s", "the interval's real length in seconds", max=MAX_INTERVAL_S),
    *IDENTITY,
    *pick(CONNECTION, "netns family laddr lport raddr rport"),
    count("rx_bytes", "UDP payload bytes of the datagrams that reached the socket from "
          "`raddr`:`rport` in the interval (headers not counted), including any it then "
          "dropped (`dropped_datagrams`)"),
    count("tx_bytes", "UDP payload bytes the socket sent to `raddr`:`rport` in the interval"),
    count("rx_datagrams", "datagrams received from the remote end in the interval (a GRO "
          "packet counts its segments)"),
    count("tx_datagrams", "datagrams sent to the remote end in the interval (a GSO send "
          "counts its segments)"),
    count("dropped_datagrams", "datagrams the socket dropped in the interval (its `sk_drops`: "
          "receive buffer full, bad checksum, socket filter), on the line of its flow that "
          "received most (the socket's other flows say 0: summing lines counts each drop once); "
          "`null` where the socket was not found open (a socket closed within the "
          "interval)", nullable=True),
    number("first_ts", "the flow's first datagram in the interval, Unix seconds", max=MAX_TS),
    number("last_ts", "its last datagram in the interval, Unix seconds", max=MAX_TS),
)

DOC_ROWS = (("`pid`", "the socket's owner: the process that first sent on it in the window, "
                      "else the process holding it at the interval's end (a server that "
                      "only receives); `null` if neither is known (a socket that only "
                      "received and closed within the interval)"),)


LOG = Log("udp", 4, "udp.jsonl", "udp",
          "One line per (process, UDP flow) that moved datagrams in an interval (`--probes "
          "+udp`).", FIELDS, FIELDS, line_budget=4_000_000, max_bytes=4 << 30,
          # UDP is not in the headline's byte counts: they stay TCP's, comparable
          # with captures without UDP
          count=no_headline, doc_rows=DOC_ROWS, opt_in=True,
          added_within=True)
