"""bandwidth probe: bytes per (pid, TCP connection) per interval."""

from __future__ import annotations

import ctypes
import platform
import re

from nettrail.capture.events import CONN_KEY, CONN_VAL, Conn, conns_from_maps, conns_from_rows
from nettrail.capture.libbpf import map_batch, map_update
from nettrail.capture.loader import HookSet, Probe

BATCH = 4096  # entries read per batch call


def kernel_before(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(m) and (int(m[1]), int(m[2])) < (major, minor)


def _merge(conns: list[Conn]) -> list[Conn]:
    """Sum entries of the same connection (found in both maps, or in a map
    and a socket's storage)."""
    merged: dict[tuple, Conn] = {}
    for c in conns:
        key = (c.pid, c.family, c.laddr, c.lport, c.raddr, c.rport)
        seen = merged.get(key)
        merged[key] = c if seen is None else seen._replace(
            rx_bytes=seen.rx_bytes + c.rx_bytes, tx_bytes=seen.tx_bytes + c.tx_bytes)
    return list(merged.values())


class BandwidthProbe(Probe):
    name = "bandwidth"
    hook_sets = (
        HookSet("tp_btf/sock_send_length+sock_recv_length (socket storage)",
                ("tp_send", "tp_recv", "tp_close"), ("dump_conns", "peek_conns")),
        HookSet("fexit/tcp_sendmsg+tcp_recvmsg", ("fexit_send", "fexit_recv")),
        HookSet("kprobe/tcp_sendmsg+tcp_recvmsg",
                ("kp_send", "krp_send", "kp_recv", "krp_recv")),
    )
    _maps = ("conns_a", "conns_b")

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        super().__init__(pids)
        self._slot = 0

    def rodata(self, hooks: HookSet) -> dict[str, bytes]:
        return {**super().rodata(hooks), "recv_flags_arg5": bytes([kernel_before(5, 19)])}

    def _counts_in_sockets(self) -> bool:
        return self.hooks is not None and "dump_conns" in self.hooks.on_demand

    def shared_counts_fd(self) -> int | None:
        """The per-socket counters the sessions probe may read owners from."""
        return self.obj.map_fd("sock_counts") if self._counts_in_sockets() else None

    def _read_map(self, slot: int, delete: bool) -> list[Conn]:
        keys, values = map_batch(self.obj.map_fd(self._maps[slot]), CONN_KEY.size,
                                 CONN_VAL.size, BATCH, delete)
        return conns_from_maps(keys, values)

    def _sockets(self, program: str) -> list[Conn]:
        """Counts kept in socket storage (typed hooks only), read by an iterator."""
        if not self._counts_in_sockets():
            return []
        return conns_from_rows(self.obj.read_iter(program, over_map="sock_counts"))

    def take_interval(self) -> list[Conn]:
        """Switch the slow path to the other map, empty the one it left, and
        take the socket counters. Counts added late stay for the next drain."""
        old, self._slot = self._slot, self._slot ^ 1
        map_update(self.obj.map_fd("bw_slot"), ctypes.c_uint32(0), ctypes.c_uint32(self._slot))
        return _merge(self._read_map(old, delete=True) + self._sockets("dump_conns"))

    def take_final(self) -> list[Conn]:
        """The last interval: everything left."""
        return _merge(self._read_map(self._slot, delete=True)
                      + self._read_map(self._slot ^ 1, delete=True)
                      + self._sockets("dump_conns"))

    def peek(self) -> list[Conn]:
        """The current interval so far, without clearing it (live view)."""
        return _merge(self._read_map(self._slot, delete=False) + self._sockets("peek_conns"))
