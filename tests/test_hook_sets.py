"""Every hook set of every probe, all its programs together, passes this
kernel's verifier (a capture stops at the first set that works)."""

from __future__ import annotations

import socket

import pytest

from nettrail.capture import libbpf
from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.clock import Clock
from nettrail.capture.events import LISTENER_ROW, RecordContext
from nettrail.capture.libbpf import BpfObject
from nettrail.capture.loader import HookSet, Probe, object_path
from nettrail.capture.probes.listeners import ListenersProbe
from nettrail.capture.probes.sessions import SessionsProbe

CASES = [(cls, h) for cls in (BandwidthProbe, SessionsProbe) for h in cls.hook_sets]


@pytest.mark.parametrize("probe_class, hooks", CASES, ids=[f"{c.name}: {h.name}" for c, h in CASES])
def test_hook_set_loads(bpf: None, probe_class: type[Probe], hooks: HookSet) -> None:
    probe = probe_class(RecordContext(Clock(), "test"))
    obj = BpfObject(str(object_path(probe.name)))
    try:
        obj.keep_only(hooks.attach + hooks.on_demand)
        probe.configure(obj, hooks)
        obj.load()
    finally:
        obj.close()


def test_a_pass_past_its_bound_is_cut_and_counted(bpf: None, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    """A pass over open files keeps at most MAX_PASS_BYTES of rows (a user can
    make a row per descriptor); the rest is read, counted, and not kept."""
    held = [socket.socket() for _ in range(3)]
    for s in held:
        s.bind(("127.0.0.1", 0))
        s.listen()
    probe = ListenersProbe(RecordContext(Clock(), "test"))
    probe.start({})
    try:
        assert probe.running, probe.status
        rows = len(probe.obj.read_iter("pass_listeners")) // LISTENER_ROW.size
        assert rows >= len(held)
        monkeypatch.setattr(libbpf, "MAX_PASS_BYTES", LISTENER_ROW.size + 1)
        kept = probe.obj.read_iter("pass_listeners", row_bytes=LISTENER_ROW.size)
        assert len(kept) == LISTENER_ROW.size
        assert probe.lost_events()["pass_rows_cut"] == probe.obj.rows_cut >= len(held) - 1
    finally:
        probe.close()
        for s in held:
            s.close()
