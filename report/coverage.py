"""What the capture did not see, said once: probes that were not asked for,
what a running probe missed (what the kernel lacks, libraries not probed,
wire-level DNS off), and traffic no probe covers (UDP, unless a probe
captured it). Data only; templates/unseen.j2 words each item."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# probes that capture UDP (meta.json's probes): one that ran means UDP was seen
UDP_PROBES = ("udp",)


@dataclass
class Unseen:
    what: str                     # skipped / missed / udp
    values: dict[str, Any] = field(default_factory=dict)


def udp_captured(status: dict[str, str]) -> bool:
    return any(status.get(name) == "ok" for name in UDP_PROBES)


def unseen(data: Any) -> list[Unseen]:
    return list(_unseen(data))


def _unseen(data: Any) -> Iterator[Unseen]:
    status = data.probe_status
    for name, s in status.items():
        if s == "skipped" and name not in UDP_PROBES:  # UDP's own line says it
            yield Unseen("skipped", {"probe": name})
    said: set[tuple[str, str]] = set()
    for row in data.hosts:
        for p in row.header.probes:
            for note in p.notes:
                if (p.name, note) not in said:  # a fleet's hosts often miss the same
                    said.add((p.name, note))
                    yield Unseen("missed", {"probe": p.name, "note": note})
    if not udp_captured(status):
        yield Unseen("udp")
