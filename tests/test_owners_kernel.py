"""Owners under churn, against the real kernel: the capture runs in this
process (so a socket closed in its task, as a pass's last reference, would
be claimed as this process's) with passes back to back while a server and
a client process whose pids are known churn sessions over loopback:
closed by the server first, reset by the client after both moved bytes,
and reset while waiting in the accept queue. Every session's two ends,
exactly once, owned by exactly their process; none by this one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.libbpf import RingBuffers
from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.probes.sessions import SessionsProbe
from helpers import TOOLS, finish, go, kill_left, line
from tools.churn import QUEUED_BYTES, RESET_BYTES

pytestmark = pytest.mark.kernel

RUNS, SESSIONS, QUEUED = 3, 200, 20


def churn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TOOLS / "churn.py"), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def capture_churn() -> tuple[list[dict], int, int, tuple[int, int]]:
    """One run: the session records of both probes' capture around it."""
    ctx = RecordContext(Clock(), "test")
    bandwidth, sessions = BandwidthProbe(ctx), SessionsProbe(ctx)
    rings, records = RingBuffers(), []
    server = churn("serve")
    procs = [server]
    try:
        bandwidth.start({})
        sessions.start({"bandwidth": bandwidth})
        assert bandwidth.running and sessions.running, sessions.status
        for name, decode in sessions.streams():
            rings.add(sessions.obj.map_fd(name), lambda blob, d=decode: records.extend(d(blob)))
        _, port, queued, server_pid = line(server).split()
        client = churn("connect", "--port", port, "--queued", queued, "--count",
                       str(SESSIONS), "--reset-queued", str(QUEUED))
        procs.append(client)
        client_pid = int(line(client).split()[1])
        go(client)
        while client.poll() is None:
            bandwidth.take_interval()  # passes back to back, racing the closes
            rings.drain()
        assert finish(client) == ["done"]
        go(server, "accept")
        assert line(server) == f"served {QUEUED}"
        bandwidth.take_interval()
        bandwidth.take_final()
        records += sessions.final_records()
        rings.drain()
    finally:
        kill_left(procs)
        rings.free()
        sessions.close()
        bandwidth.close()
    return records, int(server_pid), client_pid, (int(port), int(queued))


@pytest.mark.parametrize("run", range(RUNS))
def test_churned_sessions_owned_by_exactly_their_process(bpf: None, run: int) -> None:
    records, server_pid, client_pid, ports = capture_churn()
    mine = [r for r in records if r["lport"] in ports or r["rport"] in ports]
    assert [r for r in records if r["pid"] == os.getpid()] == []
    ends = Counter((r["side"], r["pid"], r["state"]) for r in mine)
    total = SESSIONS + QUEUED
    assert ends == {("server", server_pid, "closed"): total,
                    ("client", client_pid, "closed"): total}
    assert len({(r["laddr"], r["lport"], r["raddr"], r["rport"]) for r in mine}) == 2 * total
    received = Counter(r["rx_bytes"] for r in mine if r["side"] == "server")
    assert received == {1: SESSIONS // 2, RESET_BYTES + 1: SESSIONS // 2, QUEUED_BYTES: QUEUED}
