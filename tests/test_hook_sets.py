"""Every hook set of every probe, all its programs together, passes this
kernel's verifier (a capture stops at the first set that works)."""

from __future__ import annotations

import pytest

from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.libbpf import BpfObject
from nettrail.capture.loader import HookSet, Probe, object_path
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
