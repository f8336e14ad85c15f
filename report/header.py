"""What the page says about each capture itself: its window, probes and what
they missed, and the warnings and notes that qualify the numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from nettrail.units import printable

MAX_PROBE_NOTES = 5
# meta.json's lost_events_by_cause, as the page says each cause
LOSS_CAUSES = {"ringbuf_full": "ring buffer full", "map_full": "tracking table full",
               "query_table_full": "DNS query table full",
               "query_share_used": "a user's share of the DNS query table used up",
               "recursion_misses": "programs skipped while one ran",
               "pass_rows_cut": "a pass over open files cut at its bound",
               "unknown": "kernel buffers full"}


@dataclass
class ProbeInfo:
    name: str
    status: str
    hook: str | None
    error: str | None
    lost_events: int
    notes: list[str] = field(default_factory=list)  # what it could not see, and why
    lost_by_cause: dict[str, int] = field(default_factory=dict)
    fillers: list[str] = field(default_factory=list)  # who filled the DNS query table


def probe_notes(name: str, status: dict) -> list[str]:
    """What a running probe says it missed (meta.json's probes.NAME)."""
    notes = [f"ran {printable(d)}" for d in status.get("degraded") or () if isinstance(d, str)]
    if name == "dns" and status.get("status") == "ok":
        if status.get("wire_error"):
            notes.append(f"wire-level DNS did not start: {printable(status['wire_error'])}")
        elif status.get("wire") == "off":
            notes.append("wire-level DNS off: lookups by resolvers that bypass libc (Go, dig, "
                         "…) are not in this capture (--probes +wire)")
        skipped = [n for n in status.get("not_probed") or () if isinstance(n, dict)]
        unlisted = status.get("not_probed_unlisted")
        total = len(skipped) + (unlisted if isinstance(unlisted, int) else 0)
        if total:
            first = skipped[0] if skipped else {}
            notes.append(f"{total:,} librar{'y' if total == 1 else 'ies'} not probed, e.g. "
                         f"{printable(first.get('path', '?'))}: "
                         f"{printable(first.get('reason', '?'))}")
    return notes[:MAX_PROBE_NOTES]


@dataclass
class Header:
    title: str
    note: str | None
    host: str
    kernel: str
    started_at: str
    ended_at: str | None
    interval_s: float
    count: int
    intervals_done: int
    interrupted: bool
    trigger: str
    pids: list[int]
    probes: list[ProbeInfo]
    capture_version: str
    format: str
    intervals_late: int = 0


def header(meta: dict, title: str | None, note: str | None) -> Header:
    """meta.json as the page shows it (the reader checked its shape)."""
    lost = meta["lost_events"]
    probes = [ProbeInfo(name, p["status"], p.get("hook"), p.get("error"),
                        int(lost.get(name) or 0), probe_notes(name, p),
                        _causes(meta, name), _fillers(p))
              for name, p in meta["probes"].items()]
    host = printable(meta["host"])  # the hosts table and fleet labels show it
    return Header(title or meta["title"] or f"nettrail capture on {host}",
                  note if note is not None else meta["note"], host, meta["kernel"],
                  meta["started_at"], meta["ended_at"], float(meta["interval_s"]),
                  meta["count"], meta["intervals_done"], meta["interrupted"], meta["trigger"],
                  list(meta["filters"].get("pids") or []), probes, meta["version"],
                  meta["format"], int(meta.get("intervals_late") or 0))


def warnings(h: Header) -> Iterator[str]:
    if not h.ended_at:
        yield ("the capture did not finish (no end time): data up to its last complete "
               "interval is shown")
    if h.intervals_late:
        yield (f"{h.intervals_late:,} of {h.intervals_done:,} intervals' passes ran late or "
               "were folded into the next (the capture was busy): their rows cover longer")
    for p in h.probes:
        if p.status == "failed":
            yield f"{p.name} probe failed: {p.error}"
        elif p.error:
            yield f"{p.name} probe: {p.error}"
        if p.lost_events:
            causes = ", ".join(f"{LOSS_CAUSES.get(cause, printable(cause))} ×{n:,}"
                               for cause, n in p.lost_by_cause.items() if n) or LOSS_CAUSES[
                                   "unknown"]
            by = f"; the DNS query table was filled by {', '.join(p.fillers)}" if (
                p.fillers and p.lost_by_cause.get("query_share_used")) else ""
            yield (f"{p.name} probe lost {p.lost_events:,} events ({causes}{by}): "
                   "its numbers are a lower bound")


def _causes(meta: dict, probe: str) -> dict[str, int]:
    """meta.json's lost_events_by_cause of one probe (untrusted: counts only)."""
    by_cause = (meta.get("lost_events_by_cause") or {}).get(probe)
    if not isinstance(by_cause, dict):
        return {}
    return {str(c): n for c, n in by_cause.items() if type(n) is int and n >= 0}


def _fillers(status: dict) -> list[str]:
    """The dns probe's owners with queries refused (probes.dns.loss.query_owners)."""
    loss = status.get("loss")
    owners = loss.get("query_owners") if isinstance(loss, dict) else None
    return [f"uid {o['uid']} (netns {o['netns']}, {o['refused']:,} refused)"
            for o in owners or () if isinstance(o, dict)
            and all(type(o.get(k)) is int for k in ("uid", "netns", "refused"))
            and o["refused"]][:3]
