"""sessions probe: one record per TCP session, closed in or still open at the
end of the window (bpf/sessions.bpf.c)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from nettrail.capture.events import (ENDS, FAMILIES, SESSION, SESSION_CLOSED, SIDES,
                                     RecordContext, address, ms, text)
from nettrail.capture.libbpf import BpfObject, map_batch
from nettrail.capture.loader import BY_ADDRESS, TCP_COUNTERS, HookSet, Probe, SharedState
from nettrail.capture.preflight import BPF_NEEDS, IDENTITY_NEED, tcp_counter_problem
from nettrail.errors import ProbeError

CHUNK = 4096  # open sessions decoded at a time
SOCKET_KEY_SIZE = 8  # the key of the pending map: a socket's address
SIDE_SERVER = 2
# A server's handshake sample is read off a TCP timestamp, in ms: it exceeds
# the path's RTT by up to one tick without any wait
TIMESTAMP_TICK_US = 1000


def handshake_waited(connect_us: int, syn_retrans: int, min_rtt_us: int) -> bool:
    """An accepted socket's handshake took longer than its path: a SYN-ACK
    was resent, or the ACK completing it came well after the path's RTT
    (the first ACK dropped, the accept queue full)."""
    return syn_retrans > 0 or connect_us > 2 * min_rtt_us + TIMESTAMP_TICK_US


def session_rtt_us(side: int, srtt_us: int, handshake: bool, connect_us: int,
                   syn_retrans: int, min_rtt_us: int) -> int | None:
    """The session's smoothed RTT, null where it holds a handshake's wait: an
    accepted socket's first RTT sample is its handshake (docs/probes.md), and
    the smoothing keeps most of a long one for many samples."""
    if side == SIDE_SERVER and handshake and handshake_waited(connect_us, syn_retrans,
                                                              min_rtt_us):
        return None
    return srtt_us


def session_records(blob: bytes, ctx: RecordContext) -> list[dict]:
    """Records from struct session_event bytes (ring buffer or pass)."""
    out, unix = [], ctx.clock.unix
    for (ts, opened, tx, rx, cgroup_id, laddr, raddr, pid, netns, retrans_segs, srtt_us,
         nspid, lport, rport, family, state, side, end, handshake, _pad, comm, connect_us,
         syn_retrans, min_rtt_us, _pad2) in SESSION.iter_unpack(blob):
        out.append({"kind": "session", "ts": unix(ts),
                    **ctx.identity(pid or None, text(comm), cgroup_id, nspid),
                    "netns": netns or None, "family": FAMILIES[family],
                    "laddr": address(family, laddr), "lport": lport,
                    "raddr": address(family, raddr), "rport": rport, "side": SIDES.get(side),
                    "tx_bytes": tx, "rx_bytes": rx, "retrans_segs": retrans_segs,
                    "srtt_us": session_rtt_us(side, srtt_us, handshake, connect_us,
                                              syn_retrans, min_rtt_us),
                    "opened_at": unix(opened) if opened else None,
                    "duration_ms": ms(ts - opened) if opened else None,
                    "state": "closed" if state == SESSION_CLOSED else "open",
                    "end": ENDS.get(end), "connect_us": connect_us if handshake and connect_us else None,
                    "syn_retrans_segs": syn_retrans if handshake else None,
                    "min_rtt_us": min_rtt_us or None})
    return out


class SessionsProbe(Probe):
    """Owners and sides live in per-socket state. With the bandwidth probe
    running, its map is shared (one state per socket, one owner for both
    logs) and its passes claim owners; alone, this probe makes its own
    passes."""

    name = "sessions"
    hook_sets = (HookSet(TCP_COUNTERS, ("tp_state", "tp_destroy"), ("claim_owners", "dump_open")),)
    hook_sets += (hook_sets[0].untrusted(BY_ADDRESS),)
    shared: SharedState | None = None
    kernel_problem = staticmethod(tcp_counter_problem)
    capabilities = (*BPF_NEEDS, IDENTITY_NEED)
    claims_owners = True

    def start(self, started: Mapping[str, Probe]) -> None:
        bandwidth = started.get("bandwidth")
        self.shared = (bandwidth.shared_state()  # type: ignore[attr-defined]
                       if bandwidth is not None and bandwidth.running else None)
        if self.shared:  # its state kept as bandwidth keeps it
            self.hook_sets = tuple(h for h in type(self).hook_sets
                                   if h.file_sockets_untrusted == self.shared.by_address)
        super().start(started)
        if self.running and self.shared is None:
            self._claim_owners()

    def configure(self, obj: BpfObject, hooks: HookSet) -> None:
        super().configure(obj, hooks)
        for name, fd in self.shared.fds.items() if self.shared else ():
            obj.reuse_map(name, fd)

    def _claim_owners(self) -> None:
        self.obj.read_iter("claim_owners")

    def streams(self) -> list[tuple[str, Callable[[bytes], list[dict]]]]:
        return [("events", lambda blob: session_records(blob, self.ctx))]

    def interval_records(self, interval: int, last: bool) -> list[dict]:
        if self.shared is None:
            self._claim_owners()
        return []

    def final_records(self) -> Iterator[dict]:
        """Every session a process holds now, in any network namespace,
        decoded a chunk at a time (there may be 100,000); then the closed
        ones still waiting for their holder's last close, owned as the
        dump found them (taken out: a later close writes none again)."""
        try:
            raw = self.obj.read_iter("dump_open", row_bytes=SESSION.size)
            _, waiting = map_batch(self.obj.map_fd("pending"), SOCKET_KEY_SIZE, SESSION.size,
                                   CHUNK, delete=True)
        except ProbeError as exc:
            self.status.error = f"open sessions not written: {exc.problem}"
            return
        step = SESSION.size * CHUNK
        for blob in (raw, waiting):
            for start in range(0, len(blob), step):
                yield from session_records(blob[start:start + step], self.ctx)
