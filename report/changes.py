"""What changed since the baseline: two Profiles (report/profile.py) in,
ranked changes out, each with both numbers. Data only; templates/changes.j2
words it. How each kind of change is judged (docs/report.md, "What changed"):

- rates (bytes/s and sessions/s per program, destination and served port):
  the baseline's own bin-to-bin spread decides. The baseline's bins give a
  median m and a robust sigma, 1.4826 x the median absolute deviation; the
  current window's median bin rate c is a change if |c - m| > K x max(sigma,
  REL_FLOOR x m, the unit's absolute floor). Medians on both sides: a change
  must hold over half the window (a short burst is the burst finding's).
- new and gone (programs, destinations, served ports, names, containers):
  absent on one side, and on the other at least MIN_SESSIONS sessions or
  lookups, or MIN_BYTES bytes.
- failures (refused, reset, timeout per destination; DNS errors per name;
  events nettrail lost): at least MIN_FAILURES now, at over FAILURE_RATIO x
  the baseline's rate.
- latency (DNS per name; session duration and RTT per destination): the
  current median over LATENCY_RATIO x the baseline's, and above the
  baseline's 95th percentile, by at least the floor; or the reverse.
- retransmissions per destination (a new one's too): the share of closed
  sessions that retransmitted, up by over RETRANS_SHARE and over 3 standard
  errors of the difference of the two shares (at least MIN_FAILURES such
  sessions)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

from nettrail.report.bounded import LogSketch
from nettrail.report.profile import Activity, Profile

K = 4.0                          # robust z-score beyond which a rate changed
REL_FLOOR = 0.15                 # sigma at least this share of the median
ABS_FLOOR = {"bytes/s": 2048.0, "sessions/s": 0.5}
MIN_SESSIONS = 3
MIN_BYTES = 16_384
MIN_FAILURES = 3
FAILURE_RATIO = 3.0
LATENCY_RATIO = 2.0
LATENCY_FLOOR_MS = {"dns": 5.0, "duration": 10.0, "rtt": 5.0}
RETRANS_SHARE = 0.1
MIN_SAMPLES = 3                  # latencies on each side before a shift is judged
SHOWN = 100                      # changes the page lists

# ranking: what an on-call engineer asks about first
RANK = ("failure", "retransmissions", "dns latency", "rtt", "duration", "rate",
        "new destination", "new listener", "new program", "new name", "new container",
        "gone destination", "gone listener", "gone program", "gone name", "gone container")


@dataclass
class Change:
    kind: str                 # one of RANK
    subject: str              # the program, destination, port or name
    metric: str               # what was measured: "bytes/s", "refused/s", "p50 ms", ...
    baseline: float
    current: float
    score: float = 0.0        # how far beyond normal (z-score or ratio): orders within a kind
    detail: str = ""          # e.g. the names of a destination, the failure kind

    @property
    def rank(self) -> tuple:
        return RANK.index(self.kind), -self.score


@dataclass
class Changes:
    baseline_path: str
    baseline_host: str
    baseline_started_at: str
    why: str                  # how the baseline was chosen
    items: list[Change] = field(default_factory=list)
    count: int = 0            # before SHOWN
    checked: int = 0          # comparisons made
    host: str | None = None   # fleet reports: whose capture
    rules: dict[str, float] = field(default_factory=lambda: dict(
        k=K, rel_floor=REL_FLOOR, min_sessions=MIN_SESSIONS, min_bytes=MIN_BYTES,
        min_failures=MIN_FAILURES, failure_ratio=FAILURE_RATIO, latency_ratio=LATENCY_RATIO,
        retrans_share=RETRANS_SHARE))   # the numbers the page says it judged by


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def robust_z(base: list[float], current: float, floor: float) -> tuple[float, float]:
    """(the baseline's median, how many robust sigmas `current` is from it);
    the sigma at least REL_FLOOR of the median and `floor`."""
    m = median(base)
    sigma = 1.4826 * median([abs(v - m) for v in base])
    return m, (current - m) / max(sigma, REL_FLOOR * m, floor)


def compare(base: Profile, now: Profile, why: str) -> Changes:
    out = Changes(base.path, base.host, base.started_at, why)
    found = [*_activities(base, now, out), *_names(base, now, out), *_groups(base, now),
             *_lost(base, now)]
    found.sort(key=lambda c: c.rank)
    out.count = len(found)
    out.items = found[:SHOWN]
    return out


TABLES = (("programs", "program"), ("destinations", "destination"), ("served", "listener"))


def _activities(base: Profile, now: Profile, out: Changes) -> Iterator[Change]:
    for table, what in TABLES:
        before = dict(getattr(base, table).top())
        after = dict(getattr(now, table).top())
        for key in sorted(set(before) | set(after), key=str):
            b, a = before.get(key), after.get(key)
            if a is not None and what != "program" and b is None:  # new, and failing
                yield from _failures(str(key), Activity(base.bins), a, base, now)
                change = _retransmissions(str(key), Activity(base.bins), a)
                if change:
                    yield change
            if b is None or a is None:
                change = _new_or_gone(what, str(key), b, a, base, now)
                if change:
                    yield change
                continue
            out.checked += 1
            yield from _rates(what, str(key), b, a, base, now)
            if what != "program":
                yield from _failures(str(key), b, a, base, now)
                yield from _service_health(str(key), b, a)


def _busy(a: Activity) -> bool:
    return a.sessions + a.lookups >= MIN_SESSIONS or a.rx_bytes + a.tx_bytes >= MIN_BYTES


def _new_or_gone(what: str, subject: str, b: Activity | None, a: Activity | None,
                 base: Profile, now: Profile) -> Change | None:
    there = a or b
    assert there is not None
    if not _busy(there):
        return None
    kind = f"new {what}" if a is not None else f"gone {what}"
    # sessions/s where it had sessions (or lookups), else bytes/s
    if there.sessions or there.lookups:
        metric = "sessions/s" if there.sessions else "lookups/s"
        per = (lambda x: (x.sessions or x.lookups) if x else 0)
    else:
        metric, per = "bytes/s", (lambda x: (x.rx_bytes + x.tx_bytes) if x else 0)
    detail = ", ".join(there.names)
    return Change(kind, subject, metric, per(b) / base.seconds, per(a) / now.seconds,
                  float(per(there)), detail)


def _rates(what: str, subject: str, b: Activity, a: Activity, base: Profile,
           now: Profile) -> Iterator[Change]:
    for metric, attr in (("bytes/s", "bytes_per_bin"), ("sessions/s", "sessions_per_bin")):
        before = [n / base.bin_s for n in getattr(b, attr)]
        current = median([n / now.bin_s for n in getattr(a, attr)])
        m, z = robust_z(before, current, ABS_FLOOR[metric])
        if abs(z) > K:
            yield Change("rate", subject, metric, m, current, abs(z), what)


def _rate_of(count: int, profile: Profile) -> float:
    return count / profile.seconds


def _failures(subject: str, b: Activity, a: Activity, base: Profile, now: Profile
              ) -> Iterator[Change]:
    for end, n in a.failures.items():
        before, after = _rate_of(b.failures[end], base), _rate_of(n, now)
        if n >= MIN_FAILURES and after > FAILURE_RATIO * before:
            yield Change("failure", subject, f"{end}/s", before, after,
                         after / before if before else math.inf, end)


def _shift(kind: str, subject: str, b: LogSketch, a: LogSketch, floor_ms: float
           ) -> Change | None:
    """A latency's median moved beyond the baseline's spread and ratio."""
    if b.count < MIN_SAMPLES or a.count < MIN_SAMPLES:
        return None
    m, c = b.quantile(0.5) or 0.0, a.quantile(0.5) or 0.0
    high, low = b.quantile(0.95) or 0.0, b.quantile(0.05) or 0.0
    slower = c > LATENCY_RATIO * m and c > high and c - m >= floor_ms
    faster = m > LATENCY_RATIO * c and c < low and m - c >= floor_ms
    if not (slower or faster):
        return None
    return Change(kind, subject, "p50 ms", m, c, max(c, m) / max(min(c, m), 1e-3),
                  "slower" if slower else "faster")


def _service_health(subject: str, b: Activity, a: Activity) -> Iterator[Change]:
    for kind, attr, floor in (("duration", "durations_ms", LATENCY_FLOOR_MS["duration"]),
                              ("rtt", "rtt_ms", LATENCY_FLOOR_MS["rtt"])):
        change = _shift(kind, subject, getattr(b, attr), getattr(a, attr), floor)
        if change:
            yield change
    change = _retransmissions(subject, b, a)
    if change:
        yield change


def _retransmissions(subject: str, b: Activity, a: Activity) -> Change | None:
    """The share of closed sessions that retransmitted, up beyond RETRANS_SHARE
    and beyond chance: 3 standard errors of the difference of two shares."""
    if not a.closed or a.retrans_sessions < MIN_FAILURES:
        return None
    before = b.retrans_sessions / b.closed if b.closed else 0.0
    after = a.retrans_sessions / a.closed
    pooled = (b.retrans_sessions + a.retrans_sessions) / (b.closed + a.closed)
    noise = 3 * math.sqrt(pooled * (1 - pooled) * (1 / a.closed + 1 / max(b.closed, 1)))
    if after - before <= max(RETRANS_SHARE, noise if b.closed else 0.0):
        return None
    return Change("retransmissions", subject, "share of sessions", before, after,
                  after - before, f"{a.retrans_segs:,} segments resent")


def _names(base: Profile, now: Profile, out: Changes) -> Iterator[Change]:
    before, after = dict(base.names.top()), dict(now.names.top())
    for name in sorted(set(before) | set(after), key=str):
        b, a = before.get(name), after.get(name)
        if b is None or a is None:
            there = a or b
            assert there is not None
            if there.lookups >= MIN_SESSIONS:
                yield Change("new name" if a else "gone name", str(name), "lookups/s",
                             b.lookups / base.seconds if b else 0.0,
                             a.lookups / now.seconds if a else 0.0, float(there.lookups))
            if a is None:
                continue
            b = None
        else:
            out.checked += 1
            change = _shift("dns latency", str(name), b.latency_ms, a.latency_ms,
                            LATENCY_FLOOR_MS["dns"])
            if change:
                yield change
        for error, n in a.errors.items():
            was = _rate_of(b.errors[error], base) if b else 0.0
            rate = _rate_of(n, now)
            if n >= MIN_FAILURES and rate > FAILURE_RATIO * was:
                yield Change("failure", str(name), f"{error}/s", was, rate,
                             rate / was if was else math.inf, error)


def _groups(base: Profile, now: Profile) -> Iterator[Change]:
    for group in now.groups.keys() - base.groups.keys():
        yield Change("new container", group, "seen", 0, 1)
    for group in base.groups.keys() - now.groups.keys():
        yield Change("gone container", group, "seen", 1, 0)


def _lost(base: Profile, now: Profile) -> Iterator[Change]:
    before, after = _rate_of(base.lost_events, base), _rate_of(now.lost_events, now)
    if now.lost_events >= MIN_FAILURES and after > FAILURE_RATIO * before:
        yield Change("failure", "nettrail's own probes", "lost events/s", before, after,
                     after / before if before else math.inf, "lost events")
