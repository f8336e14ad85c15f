"""Who a record belongs to, as the page names it: processes, services and
containers, endpoints, and which side of a connection a socket is. Every
label from the logs goes through `printable` (no control characters or
bidi overrides)."""

from __future__ import annotations

import functools
import math
from typing import Any

from nettrail.format import SIDES
from nettrail.units import printable

LABEL_CACHE = 1 << 16  # labels are made once per distinct process, not per line
# Linux's default net.ipv4.ip_local_port_range: where clients' ports come from
EPHEMERAL_PORTS = range(32768, 61000)

Owner = tuple[str | None, str, object]  # (host, "container" | "pid", its id)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..1)."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@functools.lru_cache(maxsize=LABEL_CACHE)
def process_label(pid: int | None, comm: str) -> str:
    return f"{printable(comm) or '?'} ({pid})" if pid is not None else "unknown process"


@functools.lru_cache(maxsize=LABEL_CACHE)
def _group_label(container: str | None, unit: str | None, name: str | None = None,
                 pod: str | None = None, namespace: str | None = None) -> str | None:
    # names (capture/names.py) where the capture has them, else the id
    if pod:
        return printable(f"pod {namespace}/{pod}" + (f" {name}" if name else ""))
    if name:
        return f"container {printable(name)}"
    if container:
        return f"container {printable(container[:12])}"
    if unit and unit.endswith(".service"):
        return printable(unit)
    return None


def group_label(r: Any) -> str | None:
    """The container or systemd service a record's process runs in, if known
    (login sessions and user slices are no service: None)."""
    return _group_label(r.container, r.unit, r.container_name, r.pod, r.pod_namespace)


def owner_label(r: Any) -> str:
    """What the bandwidth charts and top talkers name: the service or
    container, else the process."""
    return group_label(r) or process_label(r.pid, r.comm)


def naming_owner(r: Any, host: str | None) -> Owner:
    """Whose lookups may name a connection's address: the same container, else
    the same process, on the same host."""
    return (host, "container", r.container) if r.container else (host, "pid", r.pid)


def qualified(host: str | None, label: str) -> str:
    """A process or service as a fleet report names it: `web-3:curl (812)`."""
    return f"{host}:{label}" if host is not None else label


_KNOWN_SIDES = {side: (side, False) for side in SIDES}
_CLIENT_GUESSED, _SERVER_GUESSED = ("client", True), ("server", True)


def side_of(r: Any) -> tuple[str, bool]:
    """(client|server, guessed). The capture's own flag where it has one;
    else the side whose port is ephemeral is the client."""
    return _KNOWN_SIDES.get(r.side) or _guessed_side(r.lport, r.rport)


def ports_side(lport: int, rport: int) -> str:
    """The side a socket's ports suggest (UDP's only way to tell)."""
    return _guessed_side(lport, rport)[0]


def _guessed_side(lport: int, rport: int) -> tuple[str, bool]:
    # not cached: keyed by ports, a cache would miss for every client
    local_ephemeral = lport in EPHEMERAL_PORTS
    if local_ephemeral != (rport in EPHEMERAL_PORTS):
        return _CLIENT_GUESSED if local_ephemeral else _SERVER_GUESSED
    return _CLIENT_GUESSED if lport > rport else _SERVER_GUESSED
