"""dns.jsonl: one line per name lookup by libc, and, with `--probes +wire`,
one per DNS query seen on a socket."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from nettrail.format.fields import MAX_TS, count, flag, number, text, texts
from nettrail.format.log import IDENTITY, Log, kind, pick, timestamp

SOURCES = ("libc", "wire")
RESOLVED_BY = ("dns", "literal", "hosts")

FIELDS = (
    kind("lookup"),
    timestamp("when the lookup started"),
    *IDENTITY,
    text("source", "`libc` (a libc call) or `wire` (a DNS query and its answer seen on a "
         "socket)", vocabulary=SOURCES),
    text("name", "the name asked for, as the process passed it or as the query carried it "
         "(untrusted text, at most 255 bytes); `wire` names are written per label in DNS "
         "presentation form: a dot inside a label is `\\.`, a backslash `\\\\`"),
    flag("name_truncated", "`true` if the name was longer than nettrail keeps and was cut"),
    text("qtype", "`wire`: the query type (`A`, `AAAA`, `PTR`, …); `libc`: `null`",
         nullable=True),
    text("function", "`libc`: the function called (a lookup made inside another, like glibc's "
         "`gethostbyname` calling `gethostbyname_r`, is one record of the outer function); "
         "`wire`: `null`", nullable=True),
    text("server", "`wire`: the server asked (`10.0.0.2:53`); `libc`: `null`", nullable=True),
    number("latency_ms", "call to return, or query to answer; for pending lookups, the age at "
           "window end"),
    flag("ok", "the lookup returned an answer"),
    text("error", "`null`, or the failure: `EAI_NONAME`, `EAI_AGAIN`, `EAI_FAIL`, … for "
         "`getaddrinfo`; `HOST_NOT_FOUND`, `TRY_AGAIN`, `NO_RECOVERY`, `NO_DATA` (h_errno) or "
         "an errno name for the `gethostbyname` family; the response code (`NXDOMAIN`, "
         "`SERVFAIL`, `REFUSED`, …) for `wire`, or `TIMEOUT` when no answer came before the "
         "client stopped waiting (it sent the same query again, its libc call asked on another "
         "socket or server, or returned; `latency_ms` is then how long it waited). `null` for "
         "pending lookups", nullable=True),
    texts("addresses", "the addresses returned, in order, without duplicates (at most 8 from "
          "libc)"),
    flag("pending", "`true`: no answer when the window ended, and still awaited (a `wire` "
         "query its libc call gave up is `TIMEOUT` instead)"),
    text("resolved_by", "`dns` (a name server was asked: every `wire` record, and a `libc` "
         "call that sent a query), `literal` (the name was an IP address literal: no lookup "
         "happened), `hosts` (a `localhost` name, or, with wire-level DNS on, a call answered "
         "without any query leaving the process: the hosts file or a local cache), `null` if "
         "unknown (wire-level DNS off). Lookups count only `dns` and `null` ones; `literal` "
         "and `hosts` are counted apart and kept out of latency figures",
         nullable=True, vocabulary=RESOLVED_BY),
    number("call_ts", "`wire`: the `ts` of the libc lookup (same `pid`) that sent this query, "
           "`null` if it was sent outside any libc call (Go, dig, …: a lookup seen only on the "
           "wire); `libc`: `null`. (`pid`, `call_ts`) joins a query to its call exactly",
           nullable=True, max=MAX_TS),
    count("resolv_conf", "`libc`: the `id` of the resolver configuration its process used, "
          "in meta.json `probes.dns.resolv_confs`; `null` if not known (the process ended "
          "before nettrail read it, or it has none nettrail may read); `wire`: `null`. Added "
          "within `/2`: older captures lack it", nullable=True, required=False),
)

V1_FIELDS = (*pick(FIELDS, "ts"), *pick(FIELDS, "pid", nullable=False), *pick(FIELDS, "comm"),
             text("host", "the name looked up (`name` from /2 on)"),
             *pick(FIELDS, "function", nullable=False),
             *pick(FIELDS, "latency_ms ok error addresses pending"))


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def resolved_by(resolved: str | None, name: str) -> str | None:
    """How a lookup was answered; an IP literal is `literal` also where an
    older capture did not say."""
    return "literal" if resolved is None and _is_address(name) else resolved


def count_headline(headline: Any, records: Sequence, get: Callable[..., Callable]) -> None:
    values = map(get("call_ts", "resolved_by", "name", "pending", "ok", "latency_ms"), records)
    for call_ts, resolved, name, pending, ok, latency_ms in values:
        if call_ts is not None:
            continue  # a wire query its libc call sent: that call is the lookup
        by = resolved_by(resolved, name)
        if by == "literal":
            headline.literal_lookups += 1
        elif by == "hosts":
            headline.hosts_lookups += 1
        else:
            headline.lookups += 1
            headline.pending_lookups += pending
            headline.failed_lookups += not ok and not pending
            if not pending and (headline.slowest_ms is None or latency_ms > headline.slowest_ms):
                headline.slowest_name, headline.slowest_ms = name, latency_ms


LOG = Log("dns", 3, "dns.jsonl", "lookup",
          "One line per name lookup: by libc (`getaddrinfo`, `gethostbyname`, "
          "`gethostbyname2`, `gethostbyname_r`, `gethostbyname2_r`) or seen on the wire (one "
          "line per DNS query over UDP/TCP port 53 and what came of it, with "
          "`--probes +wire`), plus, at the end, one line per lookup still unanswered.",
          FIELDS, V1_FIELDS, line_budget=400_000, max_bytes=1 << 30, count=count_headline)
