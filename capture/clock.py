"""One clock for every probe: CLOCK_BOOTTIME (bpf_ktime_get_boot_ns in BPF),
mapped to Unix time once per capture so all timestamps line up.

BPF reads the host's boot time; a process in a time namespace (unshare -T,
some containers) reads it shifted by its namespace's offset. boot_ns() takes
that offset out, so the mapping holds inside such a namespace too."""

from __future__ import annotations

import functools
import os
import time

_SAMPLES = 5
TIMENS_OFFSETS = "/proc/self/timens_offsets"
TIME_NS, TIME_NS_FOR_CHILDREN = "/proc/self/ns/time", "/proc/self/ns/time_for_children"


@functools.cache
def timens_boottime_offset_ns() -> int:
    """This process's time namespace's CLOCK_BOOTTIME offset (0 on the host,
    or on kernels without time namespaces)."""
    if not in_own_children_timens():
        return 0
    try:
        with open(TIMENS_OFFSETS) as f:
            for line in f:
                name, seconds, nanoseconds = line.split()
                if name == "boottime":
                    return int(seconds) * 1_000_000_000 + int(nanoseconds)
    except (OSError, ValueError):
        pass
    return 0


def in_own_children_timens() -> bool:
    """timens_offsets describes the namespace of this process's children. It
    is ours too, except after `unshare -T` without --fork on kernels whose
    exec does not switch (6.1 does not, 6.12 does): then this process is
    still in the namespace it started in (the host's, in that case)."""
    try:
        return os.readlink(TIME_NS) == os.readlink(TIME_NS_FOR_CHILDREN)
    except OSError:
        return True  # no time namespaces: no offsets either


def boot_ns() -> int:
    """CLOCK_BOOTTIME as the kernel (and BPF) counts it."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) - timens_boottime_offset_ns()


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
