"""Every fallback hook set passes this kernel's verifier, so the code paths
older kernels take are checked here too. (fexit is refused for every program
in this sandbox, whatever it does; the shared sessions set runs in every full
capture test.)"""

from __future__ import annotations

import pytest

from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.libbpf import BpfObject
from nettrail.capture.loader import HookSet, Probe, object_path
from nettrail.capture.probes.sessions import SessionsProbe

CASES = [(BandwidthProbe, h) for h in BandwidthProbe.hook_sets if not h.name.startswith("fexit")]
CASES += [(SessionsProbe, h) for h in SessionsProbe.own_hook_sets]


@pytest.mark.parametrize("probe_class, hooks", CASES, ids=[h.name for _, h in CASES])
def test_hook_set_loads(bpf: None, probe_class: type[Probe], hooks: HookSet) -> None:
    probe = probe_class(RecordContext(Clock(), "test"))
    obj = BpfObject(str(object_path(probe.name)))
    try:
        obj.keep_only(hooks.attach + hooks.on_demand)
        probe.configure(obj, hooks)
        obj.load()
    finally:
        obj.close()
