"""sessions probe: one record per TCP session, closed in or still open at the
end of the window."""

from __future__ import annotations

from nettrail.capture.clock import Clock
from nettrail.capture.events import session_records
from nettrail.capture.libbpf import BpfObject
from nettrail.capture.loader import HookSet, Probe
from nettrail.errors import ProbeError

_IO = "sock_send_length+sock_recv_length"


SHARED = HookSet("tp_btf/inet_sock_set_state (owners from bandwidth's socket counters)",
                 ("tp_state",), ("dump_open",))


class SessionsProbe(Probe):
    """With the bandwidth probe's per-socket counters (shared_counts_fd), the
    first process that did I/O on a socket is known without I/O hooks of our
    own: one program per send/recv instead of two."""

    name = "sessions"
    own_hook_sets = (
        HookSet(f"tp_btf/inet_sock_set_state+{_IO}", ("tp_state", "tp_send", "tp_recv"),
                ("dump_open",)),
        HookSet(f"raw_tp/inet_sock_set_state+{_IO}", ("raw_state", "raw_send", "raw_recv"),
                ("dump_open",)),
        # kernels before 6.4: owners only from connect and close
        HookSet("raw_tp/inet_sock_set_state", ("raw_state",), ("dump_open",)),
    )

    def __init__(self, pids: tuple[int, ...] = (), shared_counts_fd: int | None = None) -> None:
        super().__init__(pids)
        self.shared_counts_fd = shared_counts_fd
        self.hook_sets = ((SHARED,) if shared_counts_fd is not None else ()) + self.own_hook_sets

    def rodata(self, hooks: HookSet) -> dict[str, bytes]:
        return {**super().rodata(hooks), "shared_counts": bytes([hooks is SHARED])}

    def configure(self, obj: BpfObject, hooks: HookSet) -> None:
        super().configure(obj, hooks)
        if hooks is SHARED:
            obj.reuse_map("sock_counts", self.shared_counts_fd)

    def open_sessions(self, clock: Clock) -> list[dict]:
        """Tracked sessions still open now, with their bytes so far."""
        try:
            raw = self.obj.read_iter("dump_open")
        except ProbeError as exc:
            self.status.error = f"open sessions not written: {exc.problem}"
            return []
        return session_records(raw, clock)
