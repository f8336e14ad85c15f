"""Find every distinct libc that running processes map, so DNS uprobes cover
containers too (their libc is reached through /proc/PID/root)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

LIBC_PATH = re.compile(r"/(?:libc\.so\.6|libc-[0-9.]+\.so|(?:libc|ld)-?\.?musl-[\w]+\.so\.1)$")


@dataclass(frozen=True)
class Libc:
    path: str       # as the process sees it
    open_path: str  # reachable from here: /proc/PID/root + path
    pid: int        # a process that maps it


def _pids() -> list[int]:
    own = os.getpid()
    others = sorted(int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != own)
    return [own, *others]


def _mapped_libcs(pid: int) -> set[str]:
    try:
        with open(f"/proc/{pid}/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:  # gone, or not ours to read
        return set()
    fields = (line.split(maxsplit=5) for line in lines)
    return {f[5] for f in fields if len(f) == 6 and LIBC_PATH.search(f[5])}


def find_libcs(pids: Iterable[int] = ()) -> list[Libc]:
    """Distinct libc files (by device and inode) mapped by these or all processes."""
    seen: set[tuple[int, int]] = set()
    found = []
    for pid in list(pids) or _pids():
        for path in sorted(_mapped_libcs(pid)):
            open_path = f"/proc/{pid}/root{path}"
            try:
                st = os.stat(open_path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                found.append(Libc(path, open_path, pid))
    return found
