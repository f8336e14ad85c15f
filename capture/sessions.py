"""sessions probe: one record per TCP session, closed in or still open at the
end of the window."""

from __future__ import annotations

from capture.clock import Clock
from capture.events import session_records
from capture.loader import HookSet, Probe
from report.errors import ProbeError

_IO = "sock_send_length+sock_recv_length"


class SessionsProbe(Probe):
    name = "sessions"
    hook_sets = (
        HookSet(f"tp_btf/inet_sock_set_state+{_IO}", ("tp_state", "tp_send", "tp_recv"),
                ("dump_open",)),
        HookSet(f"raw_tp/inet_sock_set_state+{_IO}", ("raw_state", "raw_send", "raw_recv"),
                ("dump_open",)),
        # kernels before 6.4: owners only from connect and close, as tcplife
        HookSet("raw_tp/inet_sock_set_state", ("raw_state",), ("dump_open",)),
    )

    def open_sessions(self, clock: Clock) -> list[dict]:
        """Tracked sessions still open now, with their bytes so far."""
        try:
            raw = self.obj.read_iter("dump_open")
        except ProbeError as exc:
            self.status.error = f"open sessions not written: {exc.problem}"
            return []
        return session_records(raw, clock)
