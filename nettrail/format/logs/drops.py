"""drops.jsonl: per interval, one line per (network namespace, drop reason,
endpoints) of the IP packets the kernel dropped in it (added within /2)."""

from __future__ import annotations

from nettrail.format.fields import MAX_PORT, count, flag, number, text
from nettrail.format.log import IDENTITY, Log, kind, no_headline, pick, timestamp
from nettrail.format.logs.bandwidth import MAX_INTERVAL_S

PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "other")

FIELDS = (
    kind("drop"),
    timestamp("end of the interval (when the counts were read)"),
    count("interval", "1-based interval number (at most meta.json's `count`)"),
    number("interval_s", "the interval's real length in seconds", max=MAX_INTERVAL_S),
    *pick(IDENTITY, "host"),
    count("netns", "the network namespace the packet was dropped in (its inode number, as in "
          "`ls -l /proc/PID/ns/net`): its socket's if it had one, else its device's; `null` "
          "if neither was known (a packet queued for reassembly or in a queueing discipline "
          "may have neither)", nullable=True),
    text("reason", "why the kernel dropped it: its `enum skb_drop_reason` name without the "
         "`SKB_DROP_REASON_` prefix (`NETFILTER_DROP`, `TCP_OLD_DATA`, `NO_SOCKET`, "
         "`QDISC_DROP`, ...; `NOT_SPECIFIED` where the kernel gives none), named from the "
         "running kernel's BTF (the numbers differ between kernels); `reason N` for a "
         "number the kernel's BTF does not name"),
    text("family", "`ipv4` or `ipv6`", vocabulary=("ipv4", "ipv6")),
    text("protocol", "the IP protocol of the packet, `other` for any but these; `null` "
         "where its IP header could not be read", nullable=True, vocabulary=PROTOCOLS),
    text("saddr", "the packet's source address (its IP header's), `null` where not read or "
         "`endpoints_kept` is false", nullable=True),
    count("sport", "its source port (TCP and UDP), else `null`", nullable=True, max=MAX_PORT),
    text("daddr", "the packet's destination address, as `saddr`", nullable=True),
    count("dport", "its destination port, as `sport`", nullable=True, max=MAX_PORT),
    count("dropped_packets", "packets dropped in the interval"),
    count("skb_bytes", "their length in bytes as the dropping layer held them (`skb->len`: "
          "from the IP header on at or above IP, with the link-layer header below it)"),
    flag("endpoints_kept", "`false` on the line of a (namespace, reason) whose "
          "endpoints were not kept: more distinct endpoints dropped than the probe keeps "
          "(65,536 in an interval); its addresses and ports are `null`"),
)


LOG = Log("drops", 6, "drops.jsonl", "drop",
          "One line per (interval, network namespace, drop reason, protocol, endpoints) of the "
          "IP packets the kernel dropped in the interval, in any network namespace. Absent "
          "from captures made before it was added.",
          FIELDS, pick(FIELDS, "ts"), line_budget=400_000, max_bytes=256 << 20,
          count=no_headline, added_within=True)
