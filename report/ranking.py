"""The order of what stands out, and the page's one summary line.

Findings are ranked by what they did to the work (docs/report.md): work
that failed, then work that waited, then loss, then volume; within a kind,
real problems first, then the order they were found in. Only real problems
are coloured: failures, waits and storms (`warn`); loss and volume are
worth reading but normal in small amounts (`notice`) or plain facts (`info`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("failed", "waiting", "loss", "volume")   # the page's order
WARN, NOTICE, INFO = "warn", "notice", "info"
KIND_OF = {
    "refused": "failed", "reset": "failed", "timeout": "failed", "failed_lookups": "failed",
    "pending_lookups": "failed", "dead_nameserver": "failed", "servfail": "failed",
    "slow_lookups": "waiting", "high_rtt": "waiting", "handshake_retries": "waiting",
    "window_limited": "waiting", "search_expansion": "waiting", "likely_expansion": "waiting",
    "retransmissions": "loss", "conversation_retrans": "loss",
    "accept_queue_overflow": "waiting", "slow_server": "waiting", "slow_path": "waiting",
    "lossy_path": "loss", "packet_drops": "loss",
}
# volume findings that are real problems: a rate no ordinary work keeps up
COLOURED_VOLUME = ("session_storm", "lookup_storm")
SEVERITY_ORDER = (WARN, NOTICE, INFO)


@dataclass
class Summary:
    """The page's first line: the likely cause (the first ranked real
    problem), else what the window shows."""
    cause: Any | None                 # a Finding
    values: dict[str, Any] = field(default_factory=dict)


def ranked(findings: list[Any]) -> list[Any]:
    """Each finding's kind, colour and rank set; in the page's order."""
    for f in findings:
        f.kind = KIND_OF.get(f.cause, "volume")
        if f.severity == WARN and f.kind in ("loss", "volume") \
                and f.cause not in COLOURED_VOLUME:
            f.severity = NOTICE
    order = sorted(findings, key=lambda f: (KINDS.index(f.kind),
                                           SEVERITY_ORDER.index(f.severity)))
    for n, f in enumerate(order, 1):
        f.rank = n
    return order


def summary(findings: list[Any], values: dict[str, Any]) -> Summary:
    """A storm explains the failures and waits that come with it: it is the
    likely cause wherever it ranks; else the first real problem."""
    storm = next((f for f in findings if f.cause in COLOURED_VOLUME), None)
    return Summary(storm or next((f for f in findings if f.severity == WARN), None), values)
