"""One clock for every probe: CLOCK_BOOTTIME (bpf_ktime_get_boot_ns in BPF),
mapped to Unix time once per capture so all timestamps line up."""

from __future__ import annotations

import time

_SAMPLES = 5


def boot_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class Clock:
    def __init__(self) -> None:
        # the narrowest of a few (boot, wall, boot) samples gives the best offset
        best = None
        for _ in range(_SAMPLES):
            before, wall, after = boot_ns(), time.time_ns(), boot_ns()
            if best is None or after - before < best[0]:
                best = (after - before, wall - (before + after) // 2)
        self.offset_ns = best[1]

    def unix(self, boot: int) -> float:
        """Unix seconds for a CLOCK_BOOTTIME nanosecond reading."""
        return (boot + self.offset_ns) // 1000 / 1e6

    def now(self) -> float:
        return self.unix(boot_ns())
