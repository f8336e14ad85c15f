"""The captured host's own addresses: the local end of every socket it logged
(session and bandwidth lines). A remote address among them, or a loopback
one, is the host talking to itself. Bounded: at most KEEP_ADDRESSES kept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nettrail.format import is_loopback
from nettrail.report.conversations import plain_address
from nettrail.units import printable

KEEP_ADDRESSES = 4_096
OWN, LOOPBACK = "own", "loopback"   # what a remote address is to the host (None: other)


def address_of(remote: str) -> str:
    """The address of a group's remote: `10.0.0.5:443`, `[::1]:80`, or a bare address."""
    if remote.startswith("["):
        return remote[1:remote.find("]")]
    return remote.rsplit(":", 1)[0] if remote.count(":") == 1 else remote


@dataclass
class OwnAddresses:
    seen: set[tuple[str | None, str]] = field(default_factory=set)  # (host, address)

    def add(self, host: str | None, laddr: str) -> None:
        if len(self.seen) < KEEP_ADDRESSES:
            self.seen.add((host, plain_address(laddr)))

    def kind(self, host: str | None, remote: str) -> str | None:
        """LOOPBACK, OWN (another of the host's addresses) or None, for an
        endpoint (`address:port`) or a bare address."""
        address = plain_address(address_of(remote))
        if is_loopback(address):
            return LOOPBACK
        return OWN if (host, address) in self.seen else None

    def of(self, host: str | None) -> list[str]:
        """The host's addresses other than loopback, in order."""
        return sorted(printable(a) for h, a in self.seen if h == host and not is_loopback(a))


def mark(rows: Iterable[Any], own: OwnAddresses) -> None:
    """Say of each row (with `host` and `remote`) what its remote is to the host."""
    for row in rows:
        row.remote_is = own.kind(row.host, row.remote)
