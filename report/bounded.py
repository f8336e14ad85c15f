"""Fixed-size summaries, so that the report's memory and page size do not grow
with the logs (a lookup flood by any user writes a million lines).

- `LogSketch`: latency percentiles. Exact (nearest rank) up to EXACT_VALUES
  values; beyond, from logarithmic buckets (the DDSketch idea): any quantile
  it returns is within RELATIVE_ERROR (1 %) of the value of that rank; min and
  max stay exact. At most a few thousand buckets whatever the number of values
  (1 µs to 1 day at 1 %).
- `HeavyHitters`: per-key statistics for at most 2 × capacity keys (batched
  Space-Saving). While there are fewer distinct keys than that, every number
  is exact. Beyond, the lighter half is dropped; `floor` is then the heaviest
  weight ever dropped, and: a key absent at the end never weighed more than
  `floor`; a kept key's weight is an upper bound, at most its `error` above
  the truth (its other counters count only since it came back)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
SMALLEST = 1e-3  # values below (ms: under a microsecond) share one bucket
EXACT_VALUES = 64


class LogSketch:
    __slots__ = ("buckets", "values", "count", "min", "max")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.values: list[float] | None = []  # while few: exact percentiles
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float, times: int = 1) -> None:
        if self.values is not None:
            if len(self.values) + times > EXACT_VALUES:
                self.values = None
            else:
                self.values.extend([value] * times)
        index = math.ceil(math.log(value) / _LOG_GAMMA) if value > SMALLEST else 0
        self.buckets[index] = self.buckets.get(index, 0) + times
        self.count += times
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    @staticmethod
    def value_of(index: int) -> float:
        """The value a bucket stands for: within RELATIVE_ERROR of all it holds."""
        return SMALLEST if index == 0 else 2 * _GAMMA ** index / (_GAMMA + 1)

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile (q in 0..1), None when empty; exact at the ends."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        if rank == self.count:
            return self.max
        if rank == 1:
            return self.min
        if self.values is not None:
            return sorted(self.values)[rank - 1]
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(max(self.value_of(index), self.min), self.max)
        return self.max  # not reached: the counts add up to self.count

    def items(self) -> Iterator[tuple[float, int]]:
        """(value, count) per bucket, smallest first: a histogram."""
        for index in sorted(self.buckets):
            yield self.value_of(index), self.buckets[index]


class Weighted(Protocol):
    weight: float
    error: float


S = TypeVar("S", bound=Weighted)


class HeavyHitters(Generic[S]):
    """At most 2 × capacity keys, each with a statistics object made by `new`
    (which has `weight` and `error`, both starting at 0); the caller adds to
    `weight` (bytes, sessions, lookups: what ranks the key)."""

    def __init__(self, capacity: int, new: Callable[[], S]) -> None:
        self.capacity = capacity
        self.new = new
        self.items: dict[object, S] = {}
        self.floor = 0.0
        self.dropped = 0  # keys dropped (a key dropped twice counts twice)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, key: object) -> S:
        stats = self.items.get(key)
        if stats is None:
            if len(self.items) >= 2 * self.capacity:
                self._prune()
            stats = self.items[key] = self.new()
            # it may have been dropped before, with up to `floor`
            stats.weight = stats.error = self.floor
        return stats

    def _prune(self) -> None:
        ranked = sorted(self.items.items(), key=lambda kv: kv[1].weight, reverse=True)
        self.floor = max(self.floor, ranked[self.capacity][1].weight)
        self.dropped += len(ranked) - self.capacity
        self.items = dict(ranked[:self.capacity])

    def top(self, n: int | None = None, key: Callable[[S], object] | None = None
            ) -> list[tuple[object, S]]:
        """The heaviest n (all if None), by `key` (default: weight, heaviest first)."""
        order = key or (lambda s: -s.weight)
        ranked = sorted(self.items.items(), key=lambda kv: order(kv[1]))
        return ranked if n is None else ranked[:n]

    @property
    def exact(self) -> bool:
        return not self.dropped


def keep_few(seen: dict[str, None], item: str, limit: int) -> None:
    """Remember up to `limit` distinct items (one more says "and more")."""
    if len(seen) < limit:
        seen[item] = None
