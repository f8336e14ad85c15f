"""--pgrep PATTERN: the processes running now whose name matches, as
`pgrep PATTERN` (no -f) would list them."""

from __future__ import annotations

import os
import re

from nettrail.units import printable

COMM_BYTES = 64  # /proc/PID/comm holds at most 16


def _comm(pid: str) -> str | None:
    try:
        fd = os.open(f"/proc/{pid}/comm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # gone since listed
        return None
    try:
        return os.read(fd, COMM_BYTES).decode(errors="replace").removesuffix("\n")
    except OSError:
        return None
    finally:
        os.close(fd)


def pgrep(patterns: list[str], exclude: int) -> list[int]:
    """PIDs whose name matches any of the regular expressions, lowest first;
    ValueError (with the line to show) for a bad pattern or no match."""
    try:
        compiled = [re.compile(p) for p in patterns]
    except re.error as exc:
        raise ValueError(f"--pgrep {printable(exc.pattern)!s}: {exc}") from None
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isascii()
                  and name.isdigit() and int(name) != exclude
                  and (comm := _comm(name)) is not None
                  and any(c.search(comm) for c in compiled))
    if not pids:
        raise ValueError(f"no process matches --pgrep {printable(' '.join(patterns))}")
    return pids
