"""listeners.jsonl: per interval, one line per listening TCP socket whose
accept queue was in use or that dropped connections (added within /2)."""

from __future__ import annotations

from nettrail.format.fields import MAX_PORT, count, number, text
from nettrail.format.log import IDENTITY, Log, kind, no_headline, pick, timestamp
from nettrail.format.logs.bandwidth import MAX_INTERVAL_S

FIELDS = (
    kind("listener"),
    timestamp("end of the interval (when the listener was read)"),
    count("interval", "1-based interval number (at most meta.json's `count`)"),
    number("interval_s", "the interval's real length in seconds", max=MAX_INTERVAL_S),
    *IDENTITY,
    count("netns", "the listener's network namespace (its inode number, as in "
          "`ls -l /proc/PID/ns/net`)"),
    text("family", "`ipv4` or `ipv6`", vocabulary=("ipv4", "ipv6")),
    text("laddr", "the address it listens on (`0.0.0.0`, `::`: any)"),
    count("lport", "the port it listens on", max=MAX_PORT),
    count("ino", "the socket's inode number (`ss -l`'s `ino`): one listener, whichever "
          "processes hold it; the record names the lowest pid holding it"),
    count("accept_queue_conns", "connections established and waiting to be accepted when read "
          "(`sk_ack_backlog`; ss's `Recv-Q` of a listener)"),
    count("accept_limit_conns", "the accept queue's limit (`sk_max_ack_backlog`: listen()'s backlog, "
          "capped by `net.core.somaxconn`; ss's `Send-Q`). The kernel drops a handshake when "
          "`accept_queue_conns` is over it"),
    count("syn_queue_conns", "handshakes begun and not yet completed when read (SYN received, "
          "SYN-ACK sent: the request queue's length)"),
    count("listen_drops", "drops the kernel counted on the listener in the interval (the change "
          "of its `sk_drops`): every SYN it dropped (a full accept or SYN queue: the "
          "namespace's `ListenDrops` counts it too) once, a handshake-completing ACK dropped "
          "for a full accept queue twice (`ListenDrops` once, then the segment's discard), "
          "any other segment dropped while completing a handshake once"),
)


LOG = Log("listeners", 5, "listeners.jsonl", "listener",
          "One line per (interval, listening TCP socket) whose accept or SYN queue was in use "
          "when read, was in use at the reading before, or that dropped connections in the "
          "interval (in any network namespace). Absent from captures made before it was added.",
          FIELDS, pick(FIELDS, "ts"), line_budget=400_000, max_bytes=256 << 20,
          count=no_headline, added_within=True)
