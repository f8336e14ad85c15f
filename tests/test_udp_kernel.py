"""The udp probe (`--probes +udp`) against the real kernel: UDP between two
network namespaces, each count checked against the kernel's own UDP counters
of the namespace (nstat) and the test processes' own counts; and a real
sender, an iperf3 -u transfer of known size, against iperf3's own counts and
nftables counters in both namespaces."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
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
IPERF3_PORT = 5301          # iperf3's control (TCP) and data (UDP) port
IPERF3_SIZE, IPERF3_LENGTH = "2M", 1200  # -n, -l
CONNECT_MSG = 4             # iperf3's UDP stream set-up: one 4-byte datagram each way
IPV4_UDP_HEADERS = 20 + 8   # what an nftables counter counts beyond the payload
LISTEN_TIMEOUT_S = 30


def case(*args: str, ns: NetNs) -> subprocess.Popen:
    return subprocess.Popen(ns.exec_args(sys.executable, str(TOOLS / "udpcase.py"), *args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def nstat(ns: NetNs) -> dict[str, int]:
    """The namespace's UDP counters."""
    return helpers.nstat(ns, *COUNTERS)


def nft_counters(port: int) -> str:
    """Named counters of the UDP datagrams to and from `port` (iperf3's
    server port) leaving and reaching a namespace: bytes of whole IP packets."""
    return f"""
table inet nettrail_iperf3 {{
	counter out_to {{ }}
	counter out_from {{ }}
	counter in_to {{ }}
	counter in_from {{ }}
	chain out {{
		type filter hook output priority 0;
		udp dport {port} counter name out_to
		udp sport {port} counter name out_from
	}}
	chain in {{
		type filter hook input priority 0;
		udp dport {port} counter name in_to
		udp sport {port} counter name in_from
	}}
}}
"""


def read_counters(ns: NetNs) -> dict[str, tuple[int, int]]:
    """nft_counters' counters: name -> (datagrams, payload bytes)."""
    out = subprocess.run(ns.exec_args("nft", "-j", "list", "counters", "table", "inet",
                                      "nettrail_iperf3"),
                         capture_output=True, text=True, check=True).stdout
    counters = {}
    for item in json.loads(out)["nftables"]:
        if c := item.get("counter"):
            counters[c["name"]] = (c["packets"], c["bytes"] - IPV4_UDP_HEADERS * c["packets"])
    return counters


def wait_listening(ns: NetNs, port: int, proc: subprocess.Popen) -> None:
    """Until the iperf3 server's control socket listens."""
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "iperf3 -s ended early"
        out = subprocess.run(ns.exec_args("ss", "-Htln", f"sport = :{port}"),
                             capture_output=True, text=True, check=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"iperf3 -s not listening on {port}")


def iperf3(s: Scenario, ns: dict[str, NetNs], started: list[subprocess.Popen]) -> None:
    """One iperf3 -u transfer, client in icl, server in isv: its pids and the
    client's --json in `s` (`ip netns exec` execs its command: the Popen pids
    are iperf3's)."""
    server = subprocess.Popen(ns["isv"].exec_args("iperf3", "-s", "-1", "-p", str(IPERF3_PORT)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started.append(server)
    wait_listening(ns["isv"], IPERF3_PORT, server)
    client = subprocess.Popen(ns["icl"].exec_args(
        "iperf3", "-u", "-c", s.iperf3_addresses[1], "-p", str(IPERF3_PORT), "-n", IPERF3_SIZE,
        "-l", str(IPERF3_LENGTH), "-b", "10M", "--json"), stdout=subprocess.PIPE, text=True)
    started.append(client)
    out, _ = client.communicate(timeout=120)
    assert client.returncode == 0, out
    _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    s.iperf3 = json.loads(out)
    s.iperf3_pids = {"icl": client.pid, "isv": server.pid}


@dataclass
class Scenario:
    run: CaptureRun
    inode: dict[str, int]
    server_address: str = ""
    servers: dict[int, int] = field(default_factory=dict)      # port -> pid
    got: dict[int, tuple[int, int]] = field(default_factory=dict)  # port -> datagrams, bytes
    sent: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    delta: dict[str, dict[str, int]] = field(default_factory=dict)
    iperf3: dict = field(default_factory=dict)                   # the client's --json
    iperf3_addresses: tuple[str, ...] = ()                       # client, server
    iperf3_pids: dict[str, int] = field(default_factory=dict)    # namespace -> pid
    counters: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # nft
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
    # icl, isv: iperf3's own pair, apart from the namespaces' counters checked here
    ns = {name: NetNs(f"nt-u{name}-{tag}") for name in ("cli", "srv", "icl", "isv")}
    started: list[subprocess.Popen] = []
    try:
        for n in ns.values():
            n.create(resolv="nameserver 127.0.0.1\n")
        for n in (ns["icl"], ns["isv"]):
            subprocess.run(n.exec_args("nft", "-f", "-"), input=nft_counters(IPERF3_PORT),
                           text=True, check=True)
        address = connect_netns(ns["cli"], ns["srv"], "10.251.24")[1]
        iperf3_addresses = connect_netns(ns["icl"], ns["isv"], "10.251.25")
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
        s = Scenario(run, inode, address, pids, iperf3_addresses=iperf3_addresses)
        before = {name: nstat(n) for name, n in ns.items()}
        for port, (count, size) in ((BULK_PORT, BULK), (QUIC_PORT, QUIC),
                                    *((MANY_PORT, c) for c in CLIENTS), (DROP_PORT, DROPS)):
            sender = case("send", "--host", address, "--port", str(port), "--count",
                          str(count), "--size", str(size), ns=ns["cli"])
            started.append(sender)
            _, pid, lport, datagrams, size_sent = line(sender).split()
            s.sent.append((port, int(pid), int(lport), int(datagrams), int(size_sent)))
            sender.wait(timeout=60)
        iperf3(s, ns, started)
        run.interrupt()
        s.returncode, _, s.stderr = run.finish()
        s.delta = {name: {k: v - before[name][k] for k, v in nstat(n).items()}
                   for name, n in ns.items()}
        s.counters = {name: read_counters(ns[name]) for name in ("icl", "isv")}
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



def test_an_iperf3_transfer_is_exact_both_ways(scenario: Scenario) -> None:
    """The client's data: iperf3's own sent count (payload bytes, datagrams)
    plus its one set-up datagram, and the server's one reply; all of it also
    what nftables counted leaving one namespace and reaching the other. (Not
    the drops: a datagram the server's receive buffer refused is received,
    and iperf3's own loss count also misses the ones still queued at its end.)"""
    s = scenario
    sent = s.iperf3["end"]["sum"]
    (stream,) = s.iperf3["start"]["connected"]
    (cli, srv), lport = s.iperf3_addresses, stream["local_port"]
    assert sent["packets"] >= 1700 and sent["bytes"] == sent["packets"] * IPERF3_LENGTH
    data = (sent["packets"] + 1, sent["bytes"] + CONNECT_MSG)  # client -> server
    reply = (1, CONNECT_MSG)                                    # server -> client
    # nftables agrees with iperf3: nothing else on the port, nothing lost on the way
    assert s.counters["icl"] == {"out_to": data, "in_from": reply,
                                 "out_from": (0, 0), "in_to": (0, 0)}
    assert s.counters["isv"] == {"in_to": data, "out_from": reply,
                                 "in_from": (0, 0), "out_to": (0, 0)}
    # every UDP flow of the two namespaces: iperf3's one, each way
    counts = ("tx_datagrams", "tx_bytes", "rx_datagrams", "rx_bytes")
    flows = {ns: {key: tuple(f[c] for c in counts) for key, f in s.flows(ns).items()}
             for ns in ("icl", "isv")}
    assert flows == {
        "icl": {(s.iperf3_pids["icl"], cli, lport, srv, IPERF3_PORT): (*data, *reply)},
        "isv": {(s.iperf3_pids["isv"], srv, IPERF3_PORT, cli, lport): (*reply, *data)}}
