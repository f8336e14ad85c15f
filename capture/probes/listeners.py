"""listeners probe: every listening TCP socket's accept queue and drops,
read once per interval (bpf/listeners.bpf.c)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from nettrail.capture.events import FAMILIES, LISTENER_ROW, RecordContext, address, text
from nettrail.capture.loader import HookSet, Probe
from nettrail.capture.preflight import BPF_NEEDS, IDENTITY_NEED, tcp_counter_problem


class Listener(NamedTuple):
    """One listening socket as a pass read it (struct listener_row)."""

    cgroup_id: int
    ino: int
    laddr: bytes
    pid: int
    nspid: int
    netns: int
    queued: int
    queue_limit: int
    drops: int
    syn_queue: int
    lport: int
    family: int
    comm: bytes

    @property
    def key(self) -> tuple[int, int]:
        return self.netns, self.ino


def listeners_from_rows(rows: bytes) -> dict[tuple[int, int], Listener]:
    """One entry per listener, named by the lowest pid holding it (pre-forked
    workers share their parent's)."""
    found: dict[tuple[int, int], Listener] = {}
    for row in LISTENER_ROW.iter_unpack(rows):
        listener = Listener(*row)
        seen = found.get(listener.key)
        if seen is None or listener.pid < seen.pid:
            found[listener.key] = listener
    return found


def busy(listener: Listener) -> bool:
    return listener.queued > 0 or listener.syn_queue > 0


class Changes:
    """What the records say of each listener between readings: its drops
    since the last one, and whether its queues are worth a line."""

    def __init__(self, baseline: Mapping[tuple[int, int], Listener]) -> None:
        self._drops = {key: listener.drops for key, listener in baseline.items()}
        self._busy: set[tuple[int, int]] = set()

    def take(self, now: Mapping[tuple[int, int], Listener]) -> list[tuple[Listener, int]]:
        """Listeners to write, with their drops since the last reading: those
        that dropped, whose queues are in use, or were at the last reading (a
        line says they drained). One made in the window starts from 0."""
        out = []
        for key, listener in now.items():
            # sk_drops is a 32-bit counter: modulo 2**32 it wraps correctly
            drops = (listener.drops - self._drops.get(key, 0)) % (1 << 32)
            if drops or busy(listener) or key in self._busy:
                out.append((listener, drops))
        self._drops = {key: listener.drops for key, listener in now.items()}
        self._busy = {key for key, listener in now.items() if busy(listener)}
        return out


def listener_record(ctx: RecordContext, listener: Listener, drops: int, ts: float,
                    interval: int, interval_s: float) -> dict:
    comm = text(listener.comm)
    return {"kind": "listener", "ts": ts, "interval": interval, "interval_s": interval_s,
            **ctx.identity(listener.pid, comm, listener.cgroup_id, listener.nspid),
            "netns": listener.netns, "family": FAMILIES[listener.family],
            "laddr": address(listener.family, listener.laddr), "lport": listener.lport,
            "ino": listener.ino, "accept_queue_conns": listener.queued,
            "accept_limit_conns": listener.queue_limit, "syn_queue_conns": listener.syn_queue,
            "listen_drops": drops}


class ListenersProbe(Probe):
    name = "listeners"
    hook_sets = (HookSet("iter/task_file (listening sockets)", (), ("pass_listeners",)),)
    hook_sets += (hook_sets[0].untrusted(),)
    kernel_problem = staticmethod(tcp_counter_problem)
    capabilities = (*BPF_NEEDS, IDENTITY_NEED)

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self._changes = Changes({})

    def _pass(self) -> dict[tuple[int, int], Listener]:
        return listeners_from_rows(self.obj.read_iter("pass_listeners",
                                                         row_bytes=LISTENER_ROW.size))

    def start(self, started: Mapping[str, Probe]) -> None:
        """Attach, then a first pass: drops before the window are its baseline."""
        super().start(started)
        if self.running:
            self._changes = Changes(self._pass())

    def interval_records(self, interval: int, last: bool) -> list[dict]:
        changed = self._changes.take(self._pass())
        ts, length_s = self.interval_end()
        return [listener_record(self.ctx, listener, drops, ts, interval, length_s)
                for listener, drops in changed]
