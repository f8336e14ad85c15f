"""bandwidth probe: bytes per (pid, TCP connection) per interval."""

from __future__ import annotations

import ctypes
import platform
import re

from capture.events import ConnKey, ConnVal
from capture.libbpf import map_batch, map_update
from capture.loader import HookSet, Probe

MAX_CONNS = 16384  # bandwidth.bpf.c
Rows = list[tuple[ConnKey, ConnVal]]


def kernel_before(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(m) and (int(m[1]), int(m[2])) < (major, minor)


def _merge(rows: Rows) -> Rows:
    """Sum entries of the same connection (found in both maps)."""
    merged: dict[bytes, tuple[ConnKey, ConnVal]] = {}
    for key, val in rows:
        seen = merged.get(bytes(key))
        if seen:
            seen[1].rx_bytes += val.rx_bytes
            seen[1].tx_bytes += val.tx_bytes
        else:
            merged[bytes(key)] = (key, val)
    return list(merged.values())


class BandwidthProbe(Probe):
    name = "bandwidth"
    hook_sets = (
        HookSet("tp_btf/sock_send_length+sock_recv_length", ("tp_send", "tp_recv")),
        HookSet("fexit/tcp_sendmsg+tcp_recvmsg", ("fexit_send", "fexit_recv")),
        HookSet("kprobe/tcp_sendmsg+tcp_recvmsg",
                ("kp_send", "krp_send", "kp_recv", "krp_recv")),
    )
    _maps = ("conns_a", "conns_b")

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        super().__init__(pids)
        self._slot = 0

    def rodata(self) -> dict[str, bytes]:
        return {**super().rodata(), "recv_flags_arg5": bytes([kernel_before(5, 19)])}

    def _drain(self, slot: int) -> Rows:
        return map_batch(self.obj.map_fd(self._maps[slot]), ConnKey, ConnVal, MAX_CONNS,
                         delete=True)

    def take_interval(self) -> Rows:
        """Switch the probes to the other map, then empty the one they left.
        Counts added late to the old map stay there for its next drain."""
        old, self._slot = self._slot, self._slot ^ 1
        map_update(self.obj.map_fd("bw_slot"), ctypes.c_uint32(0), ctypes.c_uint32(self._slot))
        return _merge(self._drain(old))

    def take_final(self) -> Rows:
        """The last interval: everything left in both maps."""
        return _merge(self._drain(self._slot) + self._drain(self._slot ^ 1))

    def peek(self) -> Rows:
        """The current interval so far, without clearing it (live view)."""
        return map_batch(self.obj.map_fd(self._maps[self._slot]), ConnKey, ConnVal, MAX_CONNS,
                         delete=False)
