"""Every hook set of every probe, all its programs together, passes this
kernel's verifier (a capture stops at the first set that works), unless it
is one this kernel is known to refuse: a set handing a pass's sockets to
helpers where the verifier marks them untrusted (its log says so), or the
set for such kernels where the kernel lacks bpf_rdonly_cast (6.2+, by BTF)."""

from __future__ import annotations

import socket

import pytest

from nettrail.capture import libbpf, libbpf_log
from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.clock import Clock
from nettrail.capture.events import LISTENER_ROW, RecordContext
from nettrail.capture.libbpf import BpfObject, KernelBtf
from nettrail.capture.loader import HookSet, Probe, object_path
from nettrail.capture.probes.listeners import ListenersProbe
from nettrail.capture.probes.sessions import SessionsProbe
from nettrail.capture.probes.udp import UdpProbe
from nettrail.errors import ProbeError

BTF_KIND_FUNC = 12
PROBES = (BandwidthProbe, SessionsProbe, ListenersProbe, UdpProbe)
CASES = [(cls, h) for cls in PROBES for h in cls.hook_sets]


def load(probe_class: type[Probe], hooks: HookSet) -> None:
    probe = probe_class(RecordContext(Clock(), "test"))
    obj = BpfObject(str(object_path(probe.name, hooks.file_sockets_untrusted)))
    try:
        obj.keep_only(hooks.attach + hooks.on_demand)
        probe.configure(obj, hooks)
        obj.load()
    finally:
        obj.close()


def kernel_has_rdonly_cast() -> bool:
    btf = KernelBtf()
    try:
        return btf.has_type("bpf_rdonly_cast", BTF_KIND_FUNC)
    finally:
        btf.close()


@pytest.mark.parametrize("probe_class, hooks", CASES, ids=[f"{c.name}: {h.name}" for c, h in CASES])
def test_hook_set_loads(bpf: None, probe_class: type[Probe], hooks: HookSet) -> None:
    try:
        load(probe_class, hooks)
    except ProbeError as exc:
        if hooks.file_sockets_untrusted:
            assert not kernel_has_rdonly_cast(), exc.problem
        else:
            assert "(verifier: R1 type=untrusted_ptr_ expected=" in exc.problem, exc.problem


@pytest.mark.parametrize("probe_class", PROBES, ids=[c.name for c in PROBES])
def test_a_hook_set_of_each_probe_loads(bpf: None, probe_class: type[Probe]) -> None:
    refused = []
    for hooks in probe_class.hook_sets:
        try:
            load(probe_class, hooks)
            return
        except ProbeError as exc:
            refused.append(exc.problem)
    pytest.fail("; ".join(refused))


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


def test_the_verifier_refusal_is_its_logs_last_line_before_the_statistics() -> None:
    lines = ["libbpf: prog 'p': BPF program load failed: Permission denied",
             "-- BEGIN PROG LOAD LOG --", "0: R1=ctx() R10=fp0",
             "R1 type=untrusted_ptr_ expected=sock_common", "verification time 158 usec",
             "stack depth 0", "processed 8 insns (limit 1000000) max_states_per_insn 0",
             "-- END PROG LOAD LOG --", "libbpf: prog 'p': failed to load: -13"]
    assert libbpf_log.verifier_refusal(lines) == "R1 type=untrusted_ptr_ expected=sock_common"
    assert libbpf_log.verifier_refusal(lines[:1]) is None
    assert libbpf_log.verifier_refusal(lines[-1:]) is None
