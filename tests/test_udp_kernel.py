"""The udp probe (`--probes +udp`) against the real kernel: UDP between two
network namespaces, each count checked against the kernel's own UDP counters
of the namespace (nstat) and the test processes' own counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from nettrail.format import LOGS
import helpers
from helpers import (TOOLS, CaptureRun, NetNs, connect_netns, go, kill_left, line, nettrail,
                     require_bpf)

pytestmark = pytest.mark.kernel

UDP = "udp.jsonl"
INTERVAL_S, COUNT = 1, 600  # ended (SIGINT) once every case is done
BULK_PORT, QUIC_PORT, MANY_PORT, DROP_PORT = 5201, 443, 9000, 9100
BULK = (3000, 1200)   # datagrams, bytes each
QUIC = (400, 1200)
CLIENTS = ((50, 100), (120, 200), (200, 300))  # several clients of one server
DROPS = (300, 1000)   # to a server that does not read, with a tiny receive buffer
TINY_RCVBUF = 4096
BIG_RCVBUF = 8 << 20
COUNTERS = ("UdpInDatagrams", "UdpInErrors", "UdpRcvbufErrors", "UdpOutDatagrams")


def case(*args: str, ns: NetNs) -> subprocess.Popen:
    return subprocess.Popen(ns.exec_args(sys.executable, str(TOOLS / "udpcase.py"), *args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def nstat(ns: NetNs) -> dict[str, int]:
    """The namespace's UDP counters."""
    return helpers.nstat(ns, *COUNTERS)


@dataclass
class Scenario:
    run: CaptureRun
    inode: dict[str, int]
    server_address: str = ""
    servers: dict[int, int] = field(default_factory=dict)      # port -> pid
    got: dict[int, tuple[int, int]] = field(default_factory=dict)  # port -> datagrams, bytes
    sent: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    delta: dict[str, dict[str, int]] = field(default_factory=dict)
    returncode: int = 0
    stderr: str = ""

    def flows(self, ns: str, **match: object) -> dict[tuple, dict]:
        """Records of a namespace summed per (pid, flow) over the intervals."""
        out: dict[tuple, dict] = {}
        for r in self.run.records(UDP):
            if r["netns"] != self.inode[ns] or any(r[k] != v for k, v in match.items()):
                continue
            key = (r["pid"], r["laddr"], r["lport"], r["raddr"], r["rport"])
            total = out.setdefault(key, dict.fromkeys(
                ("rx_bytes", "tx_bytes", "rx_datagrams", "tx_datagrams",
                 "dropped_datagrams"), 0))
            for name in total:
                total[name] += r[name] or 0
        return out


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    require_bpf()
    tag = os.getpid()
    ns = {name: NetNs(f"nt-u{name}-{tag}") for name in ("cli", "srv")}
    started: list[subprocess.Popen] = []
    try:
        for n in ns.values():
            n.create(resolv="nameserver 127.0.0.1\n")
        address = connect_netns(ns["cli"], ns["srv"], "10.251.24")[1]
        inode = {name: os.stat(f"/run/netns/{n.name}").st_ino for name, n in ns.items()}
        # servers opened before the window: their owners are found by the pass
        servers = {}
        for port, extra in ((BULK_PORT, ("--rcvbuf", str(BIG_RCVBUF))),
                            (QUIC_PORT, ("--rcvbuf", str(BIG_RCVBUF))),
                            (MANY_PORT, ("--rcvbuf", str(BIG_RCVBUF))),
                            (DROP_PORT, ("--rcvbuf", str(TINY_RCVBUF), "--no-read"))):
            servers[port] = case("serve", "--port", str(port), *extra, ns=ns["srv"])
            started.append(servers[port])
        pids = {port: int(line(proc).split()[1]) for port, proc in servers.items()}
        run = CaptureRun(tmp_path_factory.mktemp("udp") / "capture", str(INTERVAL_S),
                         str(COUNT), "--probes", "+udp")
        started.append(run.proc)
        s = Scenario(run, inode, address, pids)
        before = {name: nstat(n) for name, n in ns.items()}
        for port, (count, size) in ((BULK_PORT, BULK), (QUIC_PORT, QUIC),
                                    *((MANY_PORT, c) for c in CLIENTS), (DROP_PORT, DROPS)):
            sender = case("send", "--host", address, "--port", str(port), "--count",
                          str(count), "--size", str(size), ns=ns["cli"])
            started.append(sender)
            _, pid, lport, datagrams, size_sent = line(sender).split()
            s.sent.append((port, int(pid), int(lport), int(datagrams), int(size_sent)))
            sender.wait(timeout=60)
        run.interrupt()
        s.returncode, _, s.stderr = run.finish()
        s.delta = {name: {k: v - before[name][k] for k, v in nstat(n).items()}
                   for name, n in ns.items()}
        for port, proc in servers.items():
            go(proc, "stop")
            _, datagrams, size = line(proc).split()
            s.got[port] = (int(datagrams), int(size))
        yield s
    finally:
        kill_left(started)
        for n in ns.values():
            n.delete()


def test_capture_ran_clean(scenario: Scenario) -> None:
    assert scenario.returncode == 0, scenario.stderr
    meta = scenario.run.meta()
    assert meta["probes"]["udp"]["status"] == "ok", meta["probes"]["udp"]
    assert meta["lost_events"]["udp"] == 0


def test_records_have_exactly_the_documented_fields(scenario: Scenario) -> None:
    records = scenario.run.records(UDP)
    assert records and {tuple(r) for r in records} == {LOGS["udp"].field_names}


def test_every_datagram_matches_the_namespaces_counters(scenario: Scenario) -> None:
    """Sent and received datagrams, all flows of each namespace: the kernel's
    own UDP counters. Received: read (InDatagrams counts at recvmsg), refused
    by the socket (InErrors), and still queued when the counters were taken
    (the server that does not read reads them after)."""
    s = scenario
    sent = s.flows("cli")
    received = s.flows("srv")
    assert sum(f["tx_datagrams"] for f in sent.values()) == s.delta["cli"]["UdpOutDatagrams"]
    assert sum(f["rx_datagrams"] for f in received.values()) == (
        s.delta["srv"]["UdpInDatagrams"] + s.delta["srv"]["UdpInErrors"]
        + s.got[DROP_PORT][0])
    assert not any(f["rx_datagrams"] for f in sent.values())
    assert not any(f["tx_datagrams"] for f in received.values())


def test_a_bulk_transfer_is_exact_both_ways(scenario: Scenario) -> None:
    s = scenario
    port, pid, lport, datagrams, size = s.sent[0]
    assert port == BULK_PORT and datagrams == BULK[0] and size == BULK[0] * BULK[1]
    client = s.flows("cli", rport=BULK_PORT)
    assert client == {(pid, "10.251.24.1", lport, s.server_address, BULK_PORT): {
        "rx_bytes": 0, "tx_bytes": size, "rx_datagrams": 0, "tx_datagrams": datagrams,
        "dropped_datagrams": 0}}
    # the server never sends: its socket's owner is the process holding it
    got_datagrams, got_bytes = s.got[BULK_PORT]
    server = s.flows("srv", lport=BULK_PORT)
    assert server == {(s.servers[BULK_PORT], s.server_address, BULK_PORT, "10.251.24.1",
                       lport): {"rx_bytes": got_bytes, "tx_bytes": 0,
                                "rx_datagrams": got_datagrams, "tx_datagrams": 0,
                                "dropped_datagrams": 0}}


def test_a_server_with_several_clients_owns_every_flow(scenario: Scenario) -> None:
    s = scenario
    clients = [(lport, datagrams, size) for port, _pid, lport, datagrams, size in s.sent
               if port == MANY_PORT]
    assert len(clients) == len(CLIENTS)
    server = s.flows("srv", lport=MANY_PORT)
    assert {key[4]: (key[0], f["rx_datagrams"], f["rx_bytes"]) for key, f in server.items()} \
        == {lport: (s.servers[MANY_PORT], datagrams, size) for lport, datagrams, size in clients}
    assert s.got[MANY_PORT] == (sum(c[1] for c in clients), sum(c[2] for c in clients))


def test_receive_buffer_drops_match_the_kernels_count(scenario: Scenario) -> None:
    s = scenario
    (flow,) = s.flows("srv", lport=DROP_PORT).values()
    assert s.delta["srv"]["UdpRcvbufErrors"] > 0
    assert flow["dropped_datagrams"] == s.delta["srv"]["UdpRcvbufErrors"]
    # every datagram reached the socket: what it kept, and what it dropped
    assert flow["rx_datagrams"] == s.got[DROP_PORT][0] + flow["dropped_datagrams"]
    assert flow["rx_datagrams"] == DROPS[0]


def test_udp_443_is_named_quic_on_the_page(scenario: Scenario, tmp_path) -> None:
    s = scenario
    server = s.flows("srv", lport=QUIC_PORT)
    assert [f["rx_datagrams"] for f in server.values()] == [s.got[QUIC_PORT][0]]
    out = tmp_path / "report.html"
    done = nettrail("report", str(s.run.directory), "-o", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert '<span class="badge">QUIC</span>' in html and 'data-unseen="udp"' not in html
    # the server's row in the UDP table (the charts draw only the top owners)
    comm = next(r["comm"] for r in s.run.records(UDP) if r["lport"] == QUIC_PORT)
    label = re.escape(f"{comm} ({s.servers[QUIC_PORT]})")
    assert re.search(rf'{label}</a>(<span class="group">[^<]*</span>)?</td>\n'
                     r'<td><span class="badge">QUIC</span></td>\n<td>server ', html)

