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
from nettrail.capture.drainer import Drainer
from nettrail.capture.libbpf import BpfObject
from nettrail.capture.loader import HookSet
from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.probes.sessions import SessionsProbe
from helpers import TOOLS, finish, go, kill_left, line
from tools.churn import QUEUED_BYTES, RESET_BYTES

pytestmark = pytest.mark.kernel

RUNS, SESSIONS, QUEUED = 3, 200, 20
SMALL_RING_BYTES = 64 << 10  # 440 sessions' 880 records of 136 bytes: about twice round
ROUND = 60  # sessions between drains: 120 records, a quarter of the small ring


def churn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TOOLS / "churn.py"), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def capture_churn() -> tuple[list[dict], int, int, tuple[int, int]]:
    """One run: the session records of both probes' capture around it."""
    ctx = RecordContext(Clock(), "test")
    bandwidth, sessions = BandwidthProbe(ctx), SessionsProbe(ctx)
    rings, records = Drainer(), []
    server = churn("serve")
    procs = [server]
    try:
        bandwidth.start({})
        sessions.start({"bandwidth": bandwidth})
        assert bandwidth.running and sessions.running, sessions.status
        for name, decode in sessions.streams():
            rings.add(sessions.obj.map_fd(name), lambda blob, d=decode: records.extend(d(blob)))
        rings.start()  # as the window drains: a thread of its own
        _, port, queued, server_pid = line(server).split()
        client = churn("connect", "--port", port, "--queued", queued, "--count",
                       str(SESSIONS), "--reset-queued", str(QUEUED))
        procs.append(client)
        client_pid = int(line(client).split()[1])
        go(client)
        while client.poll() is None:
            bandwidth.take_interval()  # passes back to back, racing the closes
            rings.hand_over()
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


def assert_exact(records: list[dict], server_pid: int, client_pid: int,
                 ports: tuple[int, int]) -> None:
    mine = [r for r in records if r["lport"] in ports or r["rport"] in ports]
    assert [r for r in records if r["pid"] == os.getpid()] == []
    ends = Counter((r["side"], r["pid"], r["state"]) for r in mine)
    total = SESSIONS + QUEUED
    assert ends == {("server", server_pid, "closed"): total,
                    ("client", client_pid, "closed"): total}
    # each server record is one client record seen from the other end (a reset
    # client's port may come back in a later connect: tuples repeat, in pairs)
    server = Counter((r["laddr"], r["lport"], r["raddr"], r["rport"]) for r in mine
                     if r["side"] == "server")
    client = Counter((r["raddr"], r["rport"], r["laddr"], r["lport"]) for r in mine
                     if r["side"] == "client")
    assert server == client and sum(server.values()) == total
    received = Counter(r["rx_bytes"] for r in mine if r["side"] == "server")
    assert received == {1: SESSIONS // 2, RESET_BYTES + 1: SESSIONS // 2, QUEUED_BYTES: QUEUED}


@pytest.mark.parametrize("run", range(RUNS))
def test_churned_sessions_owned_by_exactly_their_process(bpf: None, run: int) -> None:
    assert_exact(*capture_churn())


class SmallRing(SessionsProbe):
    """Sessions through a 64 KiB ring: the churn wraps it."""

    def configure(self, obj: BpfObject, hooks: HookSet) -> None:
        super().configure(obj, hooks)
        obj.resize_map("events", SMALL_RING_BYTES)


def test_ring_read_in_place_across_its_wraps(bpf: None) -> None:
    """The drainer reads a ring where the kernel wrote it: records that wrap
    around its end come out whole, each once. Sessions in rounds of a quarter
    of the ring, drained after each (the thread not started): none dropped
    whatever the machine's load; the pid filter keeps other traffic out."""
    server = churn("serve")
    _, port, queued, server_pid = line(server).split()
    client = churn("connect", "--port", port, "--queued", queued, "--count", str(SESSIONS),
                   "--reset-queued", str(QUEUED), "--round", str(ROUND))
    client_pid = int(line(client).split()[1])
    sessions, rings, records = SmallRing(RecordContext(Clock(), "test"),
                                         (int(server_pid), client_pid)), Drainer(), []
    try:
        sessions.start({})
        assert sessions.running, sessions.status
        for name, decode in sessions.streams():
            rings.add(sessions.obj.map_fd(name), lambda blob, d=decode: records.extend(d(blob)))
        go(client)
        while (said := line(client)) == "round":
            rings.drain()
            go(client)
        assert said == "done"
        go(server, "accept")
        assert line(server) == f"served {QUEUED}"
        records += sessions.final_records()
        rings.drain()
        assert sessions.lost_events()["ringbuf_full"] == 0
    finally:
        kill_left([client, server])
        rings.free()
        sessions.close()
    assert_exact(records, int(server_pid), client_pid, (int(port), int(queued)))
