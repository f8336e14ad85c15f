"""The report's one clock: the window (or, in a fleet report, the union of
the hosts' windows) on the wall clock, cut into at most BUCKETS buckets,
and the zone the page shows times in."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from nettrail.format.meta import parse_time

BUCKETS = 120              # at most this many time buckets across the window
NICE_BUCKETS_S = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass
class Clock:
    """The window on the wall clock, and the zone the page shows times in
    (the renderer's local zone; its offset at the window's start)."""
    start: float
    end: float
    tz: dt.tzinfo
    bucket_s: float
    buckets: int = field(init=False)  # how many buckets the window has

    def __post_init__(self) -> None:
        self.buckets = max(1, math.ceil((self.end - self.start) / self.bucket_s - 1e-9))

    @property
    def zone(self) -> str:
        local = dt.datetime.fromtimestamp(self.start, self.tz)
        offset = local.strftime("%z")
        if local.tzname() == "UTC" and offset == "+0000":
            return "UTC"
        return f"{local.tzname()}, UTC{offset[:3]}:{offset[3:]}"

    def bucket(self, ts: float) -> int:
        # a hair's allowance: 0.3 / 0.1 is 2.9999999999999996 in floats
        return min(max(int((ts - self.start) / self.bucket_s + 1e-9), 0), self.buckets - 1)

    def bucket_start(self, index: int) -> float:
        return self.start + index * self.bucket_s


def window(meta: dict) -> tuple[float, float]:
    """A capture's window: its start, and its end (planned, if it has none)."""
    start = parse_time(meta["started_at"]) or 0.0
    planned = float(meta["interval_s"]) * int(meta["count"])
    return start, parse_time(meta["ended_at"]) or start + planned


def make_clock(metas: list[dict]) -> Clock:
    """One clock for every capture: the union of their windows."""
    windows = [window(meta) for meta in metas]
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    length = max(end - start, 0.001)
    bucket_s = next((b for b in NICE_BUCKETS_S if length / b <= BUCKETS), 3600 * 24)
    return Clock(start, start + length, dt.datetime.now().astimezone().tzinfo, bucket_s)
