"""sessions probe: one record per TCP session, closed in or still open at the
end of the window."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nettrail.capture.events import (FAMILIES, SESSION, SESSION_CLOSED, RecordContext, address,
                                     ms, text)
from nettrail.capture.libbpf import BpfObject
from nettrail.capture.loader import HookSet, Probe
from nettrail.errors import ProbeError

_IO = "sock_send_length+sock_recv_length"


def session_records(blob: bytes, ctx: RecordContext) -> list[dict]:
    """Records from struct session_event bytes (ring buffer or iterator)."""
    out, unix = [], ctx.clock.unix
    for (ts, opened, tx, rx, laddr, raddr, pid, lport, rport, family, state, _pad,
         comm) in SESSION.iter_unpack(blob):
        out.append({"kind": "session", "ts": unix(ts), **ctx.identity(pid or None, text(comm)),
                    "netns": None, "family": FAMILIES[family],
                    "laddr": address(family, laddr), "lport": lport,
                    "raddr": address(family, raddr), "rport": rport, "side": None,
                    "tx_bytes": tx, "rx_bytes": rx, "retrans_segs": None, "srtt_us": None,
                    "opened_at": unix(opened) if opened else None,
                    "duration_ms": ms(ts - opened) if opened else None,
                    "state": "closed" if state == SESSION_CLOSED else "open", "end": None})
    return out


SHARED = HookSet("tp_btf/inet_sock_set_state (owners from bandwidth's socket counters)",
                 ("tp_state",), ("dump_open",))


class SessionsProbe(Probe):
    """With the bandwidth probe's per-socket counters (shared_counts_fd), the
    first process that did I/O on a socket is known without I/O hooks of our
    own: one program per send/recv instead of two."""

    name = "sessions"
    shared_counts_fd: int | None = None
    own_hook_sets = (
        HookSet(f"tp_btf/inet_sock_set_state+{_IO}", ("tp_state", "tp_send", "tp_recv"),
                ("dump_open",)),
        HookSet(f"raw_tp/inet_sock_set_state+{_IO}", ("raw_state", "raw_send", "raw_recv"),
                ("dump_open",)),
        # kernels before 6.4: owners only from connect and close
        HookSet("raw_tp/inet_sock_set_state", ("raw_state",), ("dump_open",)),
    )

    def start(self, started: Mapping[str, Probe]) -> None:
        bandwidth = started.get("bandwidth")
        self.shared_counts_fd = (bandwidth.shared_counts_fd()
                                 if bandwidth is not None and bandwidth.running else None)
        self.hook_sets = ((SHARED,) if self.shared_counts_fd is not None else ()
                          ) + self.own_hook_sets
        super().start(started)

    def rodata(self, hooks: HookSet) -> dict[str, bytes]:
        return {**super().rodata(hooks), "shared_counts": bytes([hooks is SHARED])}

    def configure(self, obj: BpfObject, hooks: HookSet) -> None:
        super().configure(obj, hooks)
        if hooks is SHARED:
            obj.reuse_map("sock_counts", self.shared_counts_fd)

    def streams(self) -> list[tuple[str, Callable[[bytes], list[dict]]]]:
        return [("events", lambda blob: session_records(blob, self.ctx))]

    def final_records(self) -> list[dict]:
        """Tracked sessions still open now, with their bytes so far."""
        try:
            raw = self.obj.read_iter("dump_open")
        except ProbeError as exc:
            self.status.error = f"open sessions not written: {exc.problem}"
            return []
        return session_records(raw, self.ctx)
