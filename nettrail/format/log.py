"""One log of the capture directory, described once: its file, its `kind`,
its fields in the order the writer emits them, how much of it the report
reads, and what its records add to the headline numbers."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nettrail.format.fields import (MAX_PID, MAX_PORT, MAX_TS, Field, Record, count,
                                    number, struct_type, text)

KIND = "kind"

# Who a record belongs to: on every line of every log. `host` is the capturing
# machine (the field log shippers also add, with the same meaning).
IDENTITY = (
    text("host", "the capturing machine's hostname (the same meaning as the `host` field log "
         "shippers such as Vector or the OpenTelemetry Collector add)"),
    count("pid", "the process id as the host sees it (thread-group id, never a thread id); "
          "`null` where no process is known (a session no process touched in the window)",
          nullable=True, max=MAX_PID),
    text("comm", "the process's name: its main thread's task name (at most 15 bytes), never a "
         "worker thread's; bytes that are not UTF-8 become U+FFFD. Untrusted: chosen by "
         "whoever started the process"),
    count("nspid", "the pid inside the process's own pid namespace (what a container's own "
          "logs say), or `null` where it is the same as `pid` or unknown",
          nullable=True, max=MAX_PID),
    text("cgroup", "the process's cgroup v2 path (`/system.slice/nginx.service`), or `null` "
         "if unknown", nullable=True),
    text("container", "the container id where the cgroup path has a known runtime pattern "
         "(`docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, "
         "`libpod-<id>.scope`, `kubepods…pod<uid>`), else `null`", nullable=True),
    text("unit", "the systemd unit (`nginx.service`, `session-4.scope`) where the cgroup path "
         "names one, else `null`", nullable=True),
    # names of the container and its pod (capture/names.py), added within /2
    text("container_name", "the container's name: for Kubernetes the pod spec's container "
         "name (from `/var/log/containers`), else Docker's or Podman's; `null` if unknown. "
         "Untrusted text, printable-escaped, at most 253 characters (docs/probes.md, "
         "\"Container and pod names\")", nullable=True, required=False),
    text("pod", "the Kubernetes pod's name (from `/var/log/pods`), else `null`; untrusted "
         "text as `container_name`", nullable=True, required=False),
    text("pod_namespace", "the Kubernetes pod's namespace (from `/var/log/pods`), else "
         "`null`; untrusted text as `container_name`", nullable=True, required=False),
    text("pod_uid", "the Kubernetes pod's uid, from the cgroup path (`kubepods…pod<uid>`), "
         "else `null`", nullable=True, required=False),
)

SIDES = ("client", "server")


def is_loopback(address: str) -> bool:
    """An address as the logs write it (`laddr`, `raddr`) that never leaves
    its host: 127/8, ::1, and 127/8 as a dual-stack socket sees it."""
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"

# One TCP connection: its network namespace, endpoints, and which side this
# host's socket is.
CONNECTION = (
    count("netns", "the network namespace of the socket (its inode number, as in "
          "`ls -l /proc/PID/ns/net`), or `null` if unknown", nullable=True),
    text("family", "`ipv4` or `ipv6`", vocabulary=("ipv4", "ipv6")),
    text("laddr", "the local address, as this host's socket sees it"),
    count("lport", "the local port", max=MAX_PORT),
    text("raddr", "the remote address, as this host's socket sees it"),
    count("rport", "the remote port", max=MAX_PORT),
    text("side", "`client` (this socket connected) or `server` (this socket was accepted), "
         "`null` if unknown (opened before the window on a kernel that cannot tell)",
         nullable=True, vocabulary=SIDES),
)


def no_headline(headline: Any, records: Sequence, get: Callable[..., Callable]) -> None:
    """A log that adds nothing to the headline numbers (findings name its records)."""


def kind(value: str) -> Field:
    return text(KIND, f"`{value}` on every line of this log", vocabulary=(value,))


def timestamp(doc: str) -> Field:
    return number("ts", doc, max=MAX_TS)


def pick(fields: tuple[Field, ...], names: str, **changes: Any) -> tuple[Field, ...]:
    """The named fields (space-separated), in that order, changed alike."""
    by_name = {f.name: f for f in fields}
    return tuple(dataclasses.replace(by_name[n], **changes) for n in names.split())


@dataclass(frozen=True)
class Log:
    probe: str                 # its name in --probes and in meta.json
    order: int                 # probes start, and logs are listed, in this order
    file: str
    kind: str
    doc: str                   # one line: what a line of it is
    fields: tuple[Field, ...]  # in the order the writer emits them
    v1_fields: tuple[Field, ...]
    line_budget: int           # lines the report reads at most (its cost stays bounded)
    max_bytes: int             # bytes the report reads at most
    # its part of the headline numbers (nettrail/headline.py): count(headline,
    # records, get) adds records whose fields `get(name, ...)` reads
    count: Callable[[Any, Sequence, Callable[..., Callable]], None]
    doc_rows: tuple[tuple[str, str], ...] = ()  # what shared fields mean in this log
    # its summary log: what the capture writes past a per-interval line budget
    summary: Log | None = None
    opt_in: bool = False       # runs only when asked for (`--probes +NAME`)
    # added within /2: captures made before it have no such file, and their
    # meta.json does not name its probe
    added_within: bool = False

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def own_fields(self) -> tuple[Field, ...]:
        """Fields beyond `kind`, identity and connection (its docs table)."""
        shared = {KIND} | {f.name for f in IDENTITY + CONNECTION}
        return tuple(f for f in self.fields if f.name not in shared)

    @functools.cached_property
    def record_type(self) -> type[Record]:
        return struct_type(f"{self.kind.capitalize()}Record", self.fields)

    @functools.cached_property
    def v1_type(self) -> type[Record]:
        return struct_type(f"{self.kind.capitalize()}RecordV1", self.v1_fields)
