"""Capture engine v2 against the real kernel: one capture around TCP cases
whose bytes, owners and endings are known (tests/tools/tcpcase.py); exact
results asserted. Processes report their steps on stdout: nothing waits on
time except the capture window itself."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.identity import cgroup2_mount
from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.format import BANDWIDTH, SESSIONS
from helpers import (TOOLS, CaptureRun, NetNs, finish, go, kill_left, line,
                     nft_loss_rules, require_bpf)
from tools.tcpcase import wait_acked

# every test here is the kernel's (the module's scenario loads the probes
# itself, so the conftest cannot see it by fixture): all in the VM matrix
pytestmark = pytest.mark.kernel

# a long window, ended (SIGINT) once every workload says it is done: under an
# emulated kernel the lossy transfer and the SYN timeout outlast a short one
INTERVAL_S, COUNT = 1, 600
COMM = os.path.basename(sys.executable)[:15]
FIN_REPLY = 123_457
BLOCKED_BYTES = 2_000_000
HOLD_BEFORE, HOLD_AFTER = 5_000, 7_000
WORKER_BYTES, WORKERS = 40_000, 3
CGROUP_BYTES = 11_000
RETRANS_BYTES = 1_000_000
LOSSY_PORT, BLACKHOLE_PORT = 5201, 5202
STORM_CONNS, STORM_BYTES = 2_000, 10_000
RESET_REPLY = 4_321
CONTAINER_ID = "3f2a" * 16
SLICE = "nettrail-test.slice"
NFT_RULES = nft_loss_rules(LOSSY_PORT, BLACKHOLE_PORT)


def tcpcase(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([*prefix, sys.executable, str(TOOLS / "tcpcase.py"), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@dataclass
class Cgroups:
    """Processes moved into cgroups named like a container and a service."""

    root: Path
    container: Path = field(init=False)
    service: Path = field(init=False)

    def __post_init__(self) -> None:
        self.container = self.root / SLICE / f"docker-{CONTAINER_ID}.scope"
        self.service = self.root / SLICE / "nettrail-web.service"
        for d in (self.container, self.service):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def move(pid: int, cgroup: Path) -> None:
        (cgroup / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for d in (self.container, self.service, self.root / SLICE):
            if d.exists():
                d.rmdir()


def child_of(pid: int) -> int:
    """The one child of `pid` (the process unshare forked into a new pid namespace)."""
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


@dataclass
class Scenario:
    run: CaptureRun = None  # type: ignore[assignment]
    returncode: int = 0
    stderr: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    netns: dict[str, int] = field(default_factory=dict)

    def sessions(self, **match: object) -> list[dict]:
        return [r for r in self.run.records(SESSIONS)
                if all(r[k] == v for k, v in match.items())]

    def bandwidth(self, **match: object) -> list[dict]:
        return [r for r in self.run.records(BANDWIDTH)
                if all(r[k] == v for k, v in match.items())]

    def bandwidth_sum(self, **match: object) -> tuple[int, int]:
        rows = self.bandwidth(**match)
        return sum(r["rx_bytes"] for r in rows), sum(r["tx_bytes"] for r in rows)


def netns_inode(ns: NetNs) -> int:
    return os.stat(f"/run/netns/{ns.name}").st_ino


@pytest.fixture(scope="module")
def netns_pair() -> Iterator[tuple[NetNs, NetNs]]:
    """One namespace for a long-lived connection, one lossy (nftables)."""
    require_bpf()
    held, lossy = NetNs(f"nt-held-{os.getpid()}"), NetNs(f"nt-lossy-{os.getpid()}")
    try:
        for ns in (held, lossy):
            ns.create(resolv="nameserver 127.0.0.1\n")
        # small segments, so that one drop in ten drops data, not a 64 KiB GSO burst
        subprocess.run(["ip", "-n", lossy.name, "link", "set", "lo", "mtu", "1500",
                        "gso_max_size", "1500"], check=True)
        subprocess.run(lossy.exec_args("nft", "-f", "-"), input=NFT_RULES, text=True,
                       check=True)
        yield held, lossy
    finally:
        held.delete()
        lossy.delete()


def blocked_receiver_pair() -> tuple[socket.socket, int, threading.Thread, list[int]]:
    """A connection whose receiver is already blocked in recv()."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        sender = socket.create_connection(lsock.getsockname())
        receiver, _ = lsock.accept()
    got: list[int] = []

    def receive() -> None:
        data = receiver.recv(BLOCKED_BYTES, socket.MSG_WAITALL)
        got.append(len(data))
        receiver.close()

    thread = threading.Thread(target=receive)
    thread.start()
    return sender, receiver.getsockname()[1], thread, got


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory,
             netns_pair: tuple[NetNs, NetNs]) -> Iterator[Scenario]:
    held_ns, lossy_ns = netns_pair
    mount = cgroup2_mount()
    assert mount, "no cgroup2 mount"
    cgroups = Cgroups(Path(mount))
    s = Scenario()
    s.netns = {"held": netns_inode(held_ns), "lossy": netns_inode(lossy_ns)}
    started: list[subprocess.Popen] = []
    try:
        # before the window: a receiver blocked in recv(), a connection in a
        # namespace, processes moved into cgroups (before any namespace)
        sender, receiver_port, blocked_thread, blocked_got = blocked_receiver_pair()
        s.ports.update(blocked_sender=sender.getsockname()[1], blocked_receiver=receiver_port)
        hold = tcpcase("hold", "--before", str(HOLD_BEFORE), "--after", str(HOLD_AFTER),
                       prefix=tuple(held_ns.exec_args()))
        started.append(hold)
        _, client_port, server_port = line(hold).split()
        s.ports.update(held_client=int(client_port), held_server=int(server_port))
        s.pids["hold"] = hold.pid
        sink = tcpcase("sink", "--count", str(WORKERS + 2))
        started.append(sink)
        s.ports["sink"] = int(line(sink))
        in_container = tcpcase("client", "--port", str(s.ports["sink"]), "--send",
                               str(CGROUP_BYTES), "--wait",
                               prefix=("unshare", "--pid", "--fork", "--kill-child"))
        in_service = tcpcase("client", "--port", str(s.ports["sink"]), "--send",
                             str(CGROUP_BYTES), "--wait")
        started += [in_container, in_service]
        s.pids["container_nspid"] = int(line(in_container).split()[1])
        line(in_service)
        s.pids["container"], s.pids["service"] = child_of(in_container.pid), in_service.pid
        Cgroups.move(s.pids["container"], cgroups.container)
        Cgroups.move(s.pids["service"], cgroups.service)

        s.run = CaptureRun(tmp_path_factory.mktemp("engine") / "capture", str(INTERVAL_S),
                           str(COUNT))
        # in the window
        sender.sendall(b"b" * BLOCKED_BYTES)
        go(hold)
        assert line(hold) == "sent"
        go(in_container)
        go(in_service)
        fin_server = tcpcase("fin-server", "--send", str(FIN_REPLY))
        s.ports["fin"] = int(line(fin_server))
        late = tcpcase("late-client", "--port", str(s.ports["fin"]))
        assert line(late) == "connected"
        assert finish(fin_server) == ["closed"]
        go(late)  # the server's FIN is in: read the reply now
        s.pids.update(fin_server=fin_server.pid, late=late.pid)
        workers = tcpcase("client", "--port", str(s.ports["sink"]), "--send",
                          str(WORKER_BYTES), "--threads", str(WORKERS))
        s.pids["workers"] = workers.pid
        refused = tcpcase("refused")
        reset_server = tcpcase("reset-server", "--send", str(RESET_REPLY))
        s.ports["reset"] = int(line(reset_server))
        reset_client = tcpcase("reset-client", "--port", str(s.ports["reset"]))
        s.pids.update(refused=refused.pid, reset_server=reset_server.pid,
                      reset_client=reset_client.pid)
        lossy_sink = tcpcase("sink", "--port", str(LOSSY_PORT),
                             prefix=tuple(lossy_ns.exec_args()))
        assert line(lossy_sink) == str(LOSSY_PORT)
        lossy = tcpcase("client", "--port", str(LOSSY_PORT), "--send", str(RETRANS_BYTES),
                        prefix=tuple(lossy_ns.exec_args()))
        blackhole = tcpcase("timeout-client", "--port", str(BLACKHOLE_PORT),
                            prefix=tuple(lossy_ns.exec_args()))
        s.pids.update(lossy_sink=lossy_sink.pid, lossy=lossy.pid, blackhole=blackhole.pid)
        for name, proc in (("late", late), ("workers", workers), ("refused", refused),
                           ("reset_server", reset_server), ("reset_client", reset_client),
                           ("container", in_container), ("service", in_service),
                           ("lossy", lossy), ("lossy_sink", lossy_sink),
                           ("blackhole", blackhole)):
            s.outputs[name] = finish(proc)
        blocked_thread.join(timeout=30)
        sender.close()
        s.outputs["blocked"] = [str(n) for n in blocked_got]
        s.outputs["sink"] = finish(sink)
        s.run.interrupt()
        s.returncode, _, s.stderr = s.run.finish()
        go(hold)  # the held connection stays open past the window's end
        finish(hold)
        yield s
    finally:
        kill_left(started)
        cgroups.remove()


def test_capture_ran_clean(scenario: Scenario) -> None:
    assert scenario.returncode == 0, scenario.stderr
    meta = scenario.run.meta()
    assert meta["lost_events"] == {"bandwidth": 0, "sessions": 0, "dns": 0, "listeners": 0,
                                   "udp": 0, "drops": 0, "netstat": 0}
    assert scenario.outputs["blocked"] == [str(BLOCKED_BYTES)]


def test_reply_read_after_the_peers_fin(scenario: Scenario) -> None:
    s = scenario
    assert s.outputs["late"] == [str(FIN_REPLY)]
    assert s.bandwidth_sum(pid=s.pids["late"], rport=s.ports["fin"]) == (FIN_REPLY, 0)
    assert s.bandwidth_sum(pid=s.pids["fin_server"], lport=s.ports["fin"]) == (0, FIN_REPLY)
    (client,) = s.sessions(pid=s.pids["late"], rport=s.ports["fin"])
    (server,) = s.sessions(pid=s.pids["fin_server"], lport=s.ports["fin"])
    assert (client["rx_bytes"], client["tx_bytes"], client["side"], client["end"]) == (
        FIN_REPLY, 0, "client", "normal")
    assert (server["rx_bytes"], server["tx_bytes"], server["side"], server["end"]) == (
        0, FIN_REPLY, "server", "normal")


def test_receiver_blocked_in_recv_when_the_capture_started(scenario: Scenario) -> None:
    s, me = scenario, os.getpid()
    assert s.bandwidth_sum(pid=me, lport=s.ports["blocked_receiver"]) == (BLOCKED_BYTES, 0)
    assert s.bandwidth_sum(pid=me, lport=s.ports["blocked_sender"]) == (0, BLOCKED_BYTES)
    (receiver,) = s.sessions(lport=s.ports["blocked_receiver"])
    assert (receiver["pid"], receiver["rx_bytes"], receiver["opened_at"]) == (
        me, BLOCKED_BYTES, None)
    assert receiver["side"] == "server" and receiver["state"] == "closed"


def test_pre_window_connection_open_at_the_end_in_another_netns(scenario: Scenario) -> None:
    s = scenario
    netns = s.netns["held"]
    client = s.sessions(lport=s.ports["held_client"], netns=netns)
    server = s.sessions(lport=s.ports["held_server"], netns=netns)
    assert len(client) == 1 and len(server) == 1
    for r, side in ((client[0], "client"), (server[0], "server")):
        assert (r["state"], r["opened_at"], r["end"], r["side"]) == ("open", None, None, side)
        assert (r["pid"], r["comm"]) == (s.pids["hold"], COMM)
    total = HOLD_BEFORE + HOLD_AFTER
    assert (client[0]["tx_bytes"], client[0]["rx_bytes"]) == (total, 0)
    assert (server[0]["tx_bytes"], server[0]["rx_bytes"]) == (0, total)
    # bandwidth: only the window's bytes
    assert s.bandwidth_sum(lport=s.ports["held_client"], netns=netns) == (0, HOLD_AFTER)
    assert s.bandwidth_sum(lport=s.ports["held_server"], netns=netns) == (HOLD_AFTER, 0)


def test_worker_threads_are_one_process_named_by_its_main_thread(scenario: Scenario) -> None:
    s = scenario
    rows = s.bandwidth(pid=s.pids["workers"])
    sessions = s.sessions(pid=s.pids["workers"])
    assert {r["comm"] for r in rows + sessions} == {COMM}
    assert s.bandwidth_sum(pid=s.pids["workers"]) == (0, WORKERS * WORKER_BYTES)
    assert len(sessions) == WORKERS
    assert all(r["tx_bytes"] == WORKER_BYTES and r["side"] == "client" for r in sessions)


def test_cgroups_name_a_container_and_a_service(scenario: Scenario) -> None:
    s = scenario
    (container,) = s.sessions(pid=s.pids["container"], rport=s.ports["sink"])
    (service,) = s.sessions(pid=s.pids["service"], rport=s.ports["sink"])
    assert container["cgroup"] == f"/{SLICE}/docker-{CONTAINER_ID}.scope"
    assert (container["container"], container["unit"]) == (
        CONTAINER_ID, f"docker-{CONTAINER_ID}.scope")
    assert container["nspid"] == s.pids["container_nspid"] != s.pids["container"]
    assert service["cgroup"] == f"/{SLICE}/nettrail-web.service"
    assert (service["container"], service["unit"], service["nspid"]) == (
        None, "nettrail-web.service", None)
    for r, pid in ((container, s.pids["container"]), (service, s.pids["service"])):
        assert r["tx_bytes"] == CGROUP_BYTES
        # one row, or two where an interval ended between the data's ACK and
        # the FIN (a row for the FIN segment alone): all of them named alike
        rows = s.bandwidth(pid=pid)
        assert sum(row["tx_bytes"] for row in rows) == CGROUP_BYTES and len(rows) <= 2
        for row in rows:
            assert {k: row[k] for k in ("cgroup", "container", "unit", "nspid")} == {
                k: r[k] for k in ("cgroup", "container", "unit", "nspid")}


def test_retransmissions_counted_and_bytes_still_exact(scenario: Scenario) -> None:
    s = scenario
    netns = s.netns["lossy"]
    rows = s.bandwidth(pid=s.pids["lossy"], rport=LOSSY_PORT, netns=netns)
    assert sum(r["tx_bytes"] for r in rows) == RETRANS_BYTES
    assert sum(r["retrans_bytes"] for r in rows) > 0
    # an ACK gives an RTT (timestamps even when it acks a retransmission);
    # before the handshake's ACK (SYNs only) there is none: null, not 0
    assert all(r["srtt_us"] > 0 for r in rows if r["tx_bytes"])
    assert all(r["srtt_us"] is None for r in rows if not r["srtt_us"])
    (client,) = s.sessions(pid=s.pids["lossy"], rport=LOSSY_PORT)
    (server,) = s.sessions(pid=s.pids["lossy_sink"], lport=LOSSY_PORT)
    assert client["retrans_segs"] > 0 and client["tx_bytes"] == RETRANS_BYTES
    assert server["rx_bytes"] == RETRANS_BYTES
    assert (client["end"], server["end"]) == ("normal", "normal")


def test_refused_connect(scenario: Scenario) -> None:
    s = scenario
    port = int(s.outputs["refused"][1])
    (r,) = s.sessions(pid=s.pids["refused"], rport=port)
    assert (r["end"], r["side"], r["tx_bytes"], r["rx_bytes"]) == ("refused", "client", 0, 0)


def test_reset_both_ends(scenario: Scenario) -> None:
    s = scenario
    assert s.outputs["reset_client"] == ["reset", "seen"]
    (client,) = s.sessions(pid=s.pids["reset_client"], rport=s.ports["reset"])
    (server,) = s.sessions(lport=s.ports["reset"], side="server")
    assert (client["end"], client["tx_bytes"], client["rx_bytes"]) == ("reset", 1, RESET_REPLY)
    # all it sent was acked, and it sent no FIN: none to take off
    assert (server["end"], server["rx_bytes"], server["tx_bytes"]) == ("reset", 1, RESET_REPLY)


def test_unanswered_syn_times_out(scenario: Scenario) -> None:
    s = scenario
    assert s.outputs["blackhole"] == ["timed", "out"]
    (r,) = s.sessions(pid=s.pids["blackhole"], rport=BLACKHOLE_PORT)
    assert (r["end"], r["side"], r["netns"]) == ("timeout", "client", s.netns["lossy"])


def _exchange(client: socket.socket, server: socket.socket, up: int, down: int) -> None:
    """`up` bytes client → server and `down` back, all read and acked."""
    for src, dst, size in ((client, server, up), (server, client, down)):
        src.sendall(b"u" * size)
        got = 0
        while got < size:
            got += len(dst.recv(size - got))
    for s in (client, server):  # the peer's ACK ends the byte's trip (bytes_acked)
        wait_acked(s)


def test_idle_connection_skipped_then_counted_when_it_moves(bpf: None) -> None:
    """Passes skip sockets idle since the last pass (TCP's own timestamps):
    a pre-window connection idle for two passes, then moving, is counted
    exactly in the interval it moved, at both ends, and never before."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    _exchange(client, server, 1_000, 1_000)  # before the window: baseline, not counted
    probe = BandwidthProbe(RecordContext(Clock(), "test"), (os.getpid(),))
    probe.start({})
    try:
        port = listener.getsockname()[1]
        mine = lambda conns: sorted((c.lport == port, c.rx_bytes, c.tx_bytes) for c in conns
                                    if port in (c.lport, c.rport))
        assert mine(probe.take_interval()) == []
        assert mine(probe.take_interval()) == []
        # one way at a time: each end has only its sending or its receiving stamp
        _exchange(client, server, 3_000, 0)
        assert mine(probe.take_interval()) == [(False, 0, 3_000), (True, 3_000, 0)]
        _exchange(client, server, 0, 500)
        assert mine(probe.take_interval()) == [(False, 500, 0), (True, 0, 500)]
        assert mine(probe.take_interval()) == []
    finally:
        probe.close()
        for s in (client, server, listener):
            s.close()


def test_socket_accepted_quiet_gets_its_bytes_and_owner_by_the_last_pass(bpf: None) -> None:
    """A connection whose bytes all arrived while it waited in the accept
    queue, accepted after the passes went on and then quiet, is one no pass
    has read: the last pass reads every socket, so its bytes and owner are
    in the window (the quiet test alone would have left both to its close)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe = BandwidthProbe(RecordContext(Clock(), "test"), (os.getpid(),))
    probe.start({})
    try:
        taken = [probe.take_interval()]
        client = socket.create_connection(listener.getsockname())
        client.sendall(b"q" * 2_000)
        wait_acked(client)  # the bytes wait in the queue
        taken += [probe.take_interval() for _ in range(3)]
        server, _ = listener.accept()
        taken += [probe.take_interval() for _ in range(2)]
        quiet = [c for conns in taken for c in conns if c.lport == port]
        assert quiet == []  # not in a file table, then quiet: passed over
        last = [c for c in probe.take_final() if c.lport == port]
        assert [(c.pid, c.rx_bytes, c.tx_bytes) for c in last] == [(os.getpid(), 2_000, 0)]
    finally:
        probe.close()
        for s in (client, server, listener):
            s.close()


def test_every_byte_once_when_passes_race_the_fins(bpf: None) -> None:
    """Passes back to back while connections exchange known bytes and FINs:
    a pass that reads a socket while TCP is taking in a FIN or its ACK
    (counter moved, flag or sequence number not yet) must not count the FIN
    as a byte, nor count a byte twice. Each end of each connection: exactly
    STORM_BYTES each way over all intervals."""
    storm = tcpcase("fin-storm", "--count", str(STORM_CONNS), "--send", str(STORM_BYTES))
    pid = int(line(storm).split()[1])
    probe = BandwidthProbe(RecordContext(Clock(), "test"), (pid,))
    probe.start({})
    totals: dict[tuple[str, int, str, int], list[int]] = {}
    try:
        go(storm)
        taken = []
        while storm.poll() is None:
            taken += probe.take_interval()
        taken += probe.take_final()
        assert finish(storm) == ["done"]
    finally:
        probe.close()
    for c in taken:
        total = totals.setdefault((c.laddr, c.lport, c.raddr, c.rport), [0, 0])
        total[0] += c.rx_bytes
        total[1] += c.tx_bytes
    wrong = {ends: t for ends, t in totals.items() if t != [STORM_BYTES, STORM_BYTES]}
    assert (len(totals), wrong) == (2 * STORM_CONNS, {})


def disconnect(sock: socket.socket) -> None:
    """connect(AF_UNSPEC): TCP's tcp_disconnect(), which zeroes the socket's
    counters and leaves it ready to connect again."""
    unspec = (ctypes.c_ubyte * 16)()  # sa_family 0
    if ctypes.CDLL(None, use_errno=True).connect(sock.fileno(), unspec, len(unspec)):
        raise OSError(ctypes.get_errno(), "connect(AF_UNSPEC)")


def test_socket_reconnected_after_a_disconnect_counts_from_zero(bpf: None) -> None:
    """A socket connected again after tcp_disconnect() starts its counters
    from zero: its second connection counts exactly, though it moved fewer
    bytes than the first."""
    first, second = (socket.create_server(("127.0.0.1", 0)) for _ in range(2))
    client = socket.create_connection(first.getsockname())
    probe = BandwidthProbe(RecordContext(Clock(), "test"), (os.getpid(),))
    probe.start({})
    try:
        server, _ = first.accept()
        _exchange(client, server, 5_000, 0)
        server.close()
        disconnect(client)
        client.connect(second.getsockname())
        server, _ = second.accept()
        _exchange(client, server, 3_000, 0)
        ports = {first.getsockname()[1]: "first", second.getsockname()[1]: "second"}
        sent = [(ports[c.rport], c.tx_bytes) for c in probe.take_final()
                if c.rport in ports and c.pid == os.getpid()]
        assert sorted(sent) == [("first", 5_000), ("second", 3_000)]
    finally:
        probe.close()
        for s in (client, server, first, second):
            s.close()
