"""Why it was slow, against the real kernel: a listener whose accept queue
overflows, a lossy path, a receiver that stops reading, SYNs that are
dropped, a server slow to answer and a slow path (tests/tools/delayline.py),
each in network namespaces of its own so that the namespace's own TCP
counters (nstat) are the oracle for what nettrail attributes to its
connections; times are checked against the cases' own clocks
(tests/tools/slowcase.py), the delay line's and ss -ti."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nettrail.capture.libbpf import BTF_KIND_STRUCT, KernelBtf
from nettrail.format import BANDWIDTH, LOGS, SESSIONS
from nettrail.report.aggregate import aggregate
from nettrail.report.build import write_report
from nettrail.report.findings import SERVER_ROUND_TRIPS
from nettrail.report.reader import open_capture
from nettrail.report.render import say
from test_schema import validator
import helpers
from helpers import (TOOLS, CaptureRun, NetNs, connect_netns, delay_netns, finish, go,
                     kill_left, line, nft_drops, nft_loss_rules, require_bpf)

pytestmark = pytest.mark.kernel

INTERVAL_S, COUNT = 1, 600  # ended (SIGINT) once every case is done
CROWD_CLIENTS, BACKLOG = 6, 1
LOSSY_PORT, HOLE_PORT = 5301, 5302
LOSSY_BYTES = 1_000_000
STALL_BYTES, STALL_RCVBUF = 1_000_000, 65_536
STALL_MS = 300  # the sender waits on the window at least this long (ss -ti)
WAIT_S = 60  # readiness polls give up after this
TIMER_SLACK = 0.9  # timers fire up to a tick early; emulated kernels (TCG) drift more
SYN_RETRIES = 1  # what slowcase.py syn-timeout asks for (TCP_SYNCNT)
SLOW_MS, SLOW_REQUESTS = 300, 4  # the slow server's wait before each answer
PATH_DELAY_MS = 40  # the slow path holds each packet this long, each way
# a request on its own connection: the handshake, the request and its answer
# (with the server's FIN), the client's FIN and its ACK
PATH_ROUND_TRIPS = 3
LISTENERS = LOGS["listeners"].file
DROPS = LOGS["drops"].file
NETSTAT = LOGS["netstat"].file
COUNTERS = ("TcpRetransSegs", "TcpExtTCPSynRetrans", "TcpExtListenOverflows",
            "TcpExtListenDrops", "TcpExtTCPTimeouts")
NFT_RULES = nft_loss_rules(LOSSY_PORT, HOLE_PORT)


def case(tool: str, *args: str, ns: NetNs) -> subprocess.Popen:
    return subprocess.Popen(ns.exec_args(sys.executable, str(TOOLS / tool), *args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def nstat(ns: NetNs) -> dict[str, int]:
    """The namespace's TCP counters."""
    return helpers.nstat(ns, *COUNTERS)


def wait_until(what: str, ready) -> object:
    deadline = time.monotonic() + WAIT_S
    while not (value := ready()):
        assert time.monotonic() < deadline, f"not in {WAIT_S} s: {what}"
        time.sleep(0.05)
    return value


def rwnd_limited_ms(ns: NetNs, port: int) -> int:
    """The sender's receive-window-limited time as ss -ti reports it (0: none
    yet). It has shut down its side: FIN_WAIT1, its FIN behind the data."""
    out = subprocess.run(ns.exec_args("ss", "-tinH", "sport", "=", f":{port}"),
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"rwnd_limited:(\d+)ms", out)
    return int(found.group(1)) if found else 0


def syn_timer_s(n: int) -> float:
    """How long n SYN timeouts take: the first (TCP_TIMEOUT_INIT) is 1 s, each
    next one doubles: 1, 3, 7 s… (the give-up time TCP_SYNCNT n stands for)."""
    return 2.0 ** n - 1


@dataclass
class Scenario:
    run: CaptureRun
    ns: dict[str, NetNs]
    inode: dict[str, int] = field(default_factory=dict)
    delta: dict[str, dict[str, int]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    connect_s: dict[int, float] = field(default_factory=dict)
    server_address: str = ""
    path_address: str = ""
    ss_rwnd_ms: int = 0
    nft: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    # the slow server's ("slow") and the slow path's ("path") client times, by local port
    client_s: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    returncode: int = 0
    stderr: str = ""

    def rows(self, log: str, ns: str, **match: object) -> list[dict]:
        return [r for r in self.run.records(log) if r["netns"] == self.inode[ns]
                and all(r[k] == v for k, v in match.items())]


@pytest.fixture(scope="module")
def namespaces() -> Iterator[tuple[dict[str, NetNs], str, str]]:
    """The namespaces by role, the crowded server's address (cli to srv over a
    veth pair) and the far end of the slow path (near to far, through the
    delay line); the others on their own loopback."""
    require_bpf()
    tag = os.getpid()
    ns = {name: NetNs(f"nt-{name}-{tag}")
          for name in ("cli", "srv", "loss", "stall", "hole", "slow", "near", "far")}
    keepers: list[subprocess.Popen] = []
    try:
        for n in ns.values():
            n.create(resolv="nameserver 127.0.0.1\n")
        server_address = connect_netns(ns["cli"], ns["srv"], "10.251.19")[1]
        delay_line, (_, far_address) = delay_netns(ns["near"], ns["far"], "10.251.20",
                                                   PATH_DELAY_MS)
        keepers.append(delay_line)
        # small segments: one drop in ten drops data, not a 64 KiB GSO burst
        subprocess.run(["ip", "-n", ns["loss"].name, "link", "set", "lo", "mtu", "1500",
                        "gso_max_size", "1500"], check=True)
        for name in ("loss", "hole"):
            subprocess.run(ns[name].exec_args("nft", "-f", "-"), input=NFT_RULES, text=True,
                           check=True)
        # the netstat probe reads a namespace through a process in it
        keepers += [subprocess.Popen(n.exec_args("sleep", "3600")) for n in ns.values()]
        yield ns, server_address, far_address
    finally:
        kill_left(keepers)
        for n in ns.values():
            n.delete()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory,
             namespaces: tuple[dict[str, NetNs], str, str]) -> Iterator[Scenario]:
    ns, server_address, path_address = namespaces
    s = Scenario(CaptureRun(tmp_path_factory.mktemp("slow") / "capture", str(INTERVAL_S),
                            str(COUNT), "--probes", "bandwidth,sessions,listeners,drops,netstat"), ns,
                 server_address=server_address, path_address=path_address)
    s.inode = {name: os.stat(f"/run/netns/{n.name}").st_ino for name, n in ns.items()}
    before = {name: nstat(n) for name, n in ns.items()}
    started: list[subprocess.Popen] = []
    try:
        # the tick rate is measured within the window's first second: after it,
        # every connection's chrono stats are taken
        wait_until("two intervals", lambda: (s.run.directory / "meta.json").exists()
                   and s.run.meta()["intervals_done"] >= 2)
        hole = case("slowcase.py", "syn-timeout", "--host", "127.0.0.1", "--port",
                    str(HOLE_PORT), ns=ns["hole"])
        started.append(hole)

        server = case("slowcase.py", "crowd-server", "--backlog", str(BACKLOG), ns=ns["srv"])
        started.append(server)
        s.ports["crowd"] = int(line(server))
        crowd = case("slowcase.py", "crowd", "--host", s.server_address, "--port",
                     str(s.ports["crowd"]), "--clients", str(CROWD_CLIENTS), ns=ns["cli"])
        started.append(crowd)
        # the queue has overflowed once the kernel says so: only then accept
        wait_until("an accept queue overflow", lambda: nstat(ns["srv"])[
            "TcpExtListenOverflows"] > before["srv"]["TcpExtListenOverflows"])
        go(server, str(CROWD_CLIENTS))
        s.connect_s = {int(port): took for port, took in json.loads(line(crowd)).items()}
        s.outputs["crowd"] = finish(crowd)
        assert line(server) == "read"
        # every handshake is done: a pass after this reads the listener's last drops
        done = s.run.meta()["intervals_done"]
        wait_until("an interval pass", lambda: s.run.meta()["intervals_done"] >= done + 2)
        go(server)
        s.outputs["crowd_server"] = finish(server)

        sink = case("tcpcase.py", "sink", "--port", str(LOSSY_PORT), ns=ns["loss"])
        started.append(sink)
        assert line(sink) == str(LOSSY_PORT)
        lossy = case("tcpcase.py", "client", "--port", str(LOSSY_PORT), "--send",
                     str(LOSSY_BYTES), ns=ns["loss"])
        s.outputs["lossy"], s.outputs["sink"] = finish(lossy), finish(sink)

        stall_server = case("slowcase.py", "stall-server", "--rcvbuf", str(STALL_RCVBUF),
                            ns=ns["stall"])
        started.append(stall_server)
        s.ports["stall"] = int(line(stall_server))
        stall_client = case("slowcase.py", "stall-client", "--port", str(s.ports["stall"]),
                            "--send", str(STALL_BYTES), ns=ns["stall"])
        started.append(stall_client)
        s.ports["stall_client"] = int(line(stall_client).split()[1])
        s.ss_rwnd_ms = wait_until("the sender waits on the window", lambda: (
            ms if (ms := rwnd_limited_ms(ns["stall"], s.ports["stall_client"])) >= STALL_MS
            else 0))
        go(stall_server)
        s.outputs["stall"], s.outputs["stall_client"] = finish(stall_server), finish(
            stall_client)
        s.outputs["hole"] = finish(hole)

        # the same requests to a server slow to answer, and across the slow path
        for key, host, delay_ms, server_ns, client_ns in (
                ("slow", "127.0.0.1", SLOW_MS, "slow", "slow"),
                ("path", s.path_address, 0, "far", "near")):
            slow_server = case("slowcase.py", "slow-server", "--host", host, "--delay-ms",
                               str(delay_ms), "--requests", str(SLOW_REQUESTS),
                               ns=ns[server_ns])
            started.append(slow_server)
            s.ports[key] = int(line(slow_server))
            slow_client = case("slowcase.py", "slow-client", "--host", host, "--port",
                               str(s.ports[key]), "--requests", str(SLOW_REQUESTS),
                               ns=ns[client_ns])
            started.append(slow_client)
            s.client_s[key] = {int(port): t for port, t in json.loads(line(slow_client)).items()}
            s.outputs[key], s.outputs[f"{key}_client"] = finish(slow_server), finish(
                slow_client)

        s.run.interrupt()
        s.returncode, _, s.stderr = s.run.finish()
        s.delta = {name: {k: v - before[name][k] for k, v in nstat(n).items()}
                   for name, n in ns.items()}
        s.nft = {name: nft_drops(ns[name]) for name in ("loss", "hole")}
        yield s
    finally:
        kill_left([*started, s.run.proc])


def test_capture_ran_clean(scenario: Scenario) -> None:
    assert scenario.returncode == 0, scenario.stderr
    assert scenario.run.meta()["lost_events"]["sessions"] == 0


def test_crowded_listener_handshake_retries_match_the_kernels_counts(
        scenario: Scenario) -> None:
    s = scenario
    port = s.ports["crowd"]
    clients = s.rows(SESSIONS, "cli", rport=port)
    servers = s.rows(SESSIONS, "srv", lport=port)
    assert sorted(r["lport"] for r in clients) == sorted(s.connect_s)
    assert len(servers) == CROWD_CLIENTS
    assert s.delta["srv"]["TcpExtListenOverflows"] > 0
    # SYNs resent by the clients, SYN-ACKs by the server: each namespace's own count
    assert sum(r["syn_retrans_segs"] for r in clients) == s.delta["cli"]["TcpExtTCPSynRetrans"]
    assert sum(r["syn_retrans_segs"] for r in servers) == s.delta["srv"]["TcpExtTCPSynRetrans"]
    # the overflow dropped SYNs: some client waited for its SYN's first timeout
    assert any(r["syn_retrans_segs"] for r in clients)


def test_client_connect_latency_is_its_connect_call(scenario: Scenario) -> None:
    s = scenario
    for r in s.rows(SESSIONS, "cli", rport=s.ports["crowd"]):
        # inside the call (SYN_SENT to ESTABLISHED); a resent SYN waited for
        # the first retransmission timer at least
        least = syn_timer_s(1) * TIMER_SLACK if r["syn_retrans_segs"] else 0
        assert least * 1e6 <= r["connect_us"] <= s.connect_s[r["lport"]] * 1e6, r


def test_accepted_socket_rtt_is_not_its_handshake_wait(scenario: Scenario) -> None:
    s = scenario
    servers = s.rows(SESSIONS, "srv", lport=s.ports["crowd"])
    assert all(r["connect_us"] is not None and r["min_rtt_us"] for r in servers)
    for r in servers:
        if r["syn_retrans_segs"]:
            # its first RTT sample was the handshake, a SYN-ACK timeout long
            assert r["connect_us"] >= TIMER_SLACK * syn_timer_s(1) * 1e6, r
            assert r["srtt_us"] is None, r
    assert any(r["srtt_us"] is None for r in servers) == any(
        r["syn_retrans_segs"] or r["connect_us"] > 2 * r["min_rtt_us"] + 1000 for r in servers)


def test_lossy_connection_segments_resent_match_the_kernels_count(scenario: Scenario) -> None:
    s = scenario
    assert s.outputs["sink"] == [str(LOSSY_BYTES)]
    rows = s.rows(BANDWIDTH, "loss", rport=LOSSY_PORT)
    (client,) = s.rows(SESSIONS, "loss", rport=LOSSY_PORT)
    resent = s.delta["loss"]["TcpRetransSegs"]
    assert resent > 0
    # the namespace's only connection: both ends' resends are its count (the
    # server resends its FIN when the client's ACK of it is dropped)
    assert sum(r["retrans_segs"] for r in s.rows(BANDWIDTH, "loss")) == resent
    assert sum(r["retrans_segs"] for r in s.rows(SESSIONS, "loss")) == resent
    assert sum(r["retrans_segs"] for r in rows) == client["retrans_segs"] > 0
    assert sum(r["lost_segs"] for r in rows) > 0
    assert sum(r["tx_bytes"] for r in rows) == LOSSY_BYTES
    assert any(r["delivery_bytes_per_s"] for r in rows)
    # the RTO count is the kernel's total_rto (6.7+), where its BTF has one
    btf = KernelBtf()
    try:
        counted = "total_rto" in btf.names_in("tcp_sock", BTF_KIND_STRUCT)
    finally:
        btf.close()
    assert all((r["rto_timeouts"] is not None) == counted for r in rows)


def test_stalled_receiver_limits_the_sender_by_its_window(scenario: Scenario) -> None:
    s = scenario
    assert s.outputs["stall"] == ["read", str(STALL_BYTES)]
    sender = s.rows(BANDWIDTH, "stall", lport=s.ports["stall_client"])
    receiver = s.rows(BANDWIDTH, "stall", lport=s.ports["stall"])
    assert sender and receiver
    # the same jiffies ss -ti read while the sender still waited
    assert sum(r["rwnd_limited_us"] for r in sender) >= s.ss_rwnd_ms * 1000, (
        sender, s.run.meta()["lost_events"])
    assert all(r["busy_us"] >= r["rwnd_limited_us"] for r in sender)
    # the receiver sent nothing: never limited
    assert all(r["rwnd_limited_us"] == r["sndbuf_limited_us"] == 0 for r in receiver)


def test_dropped_syns_retried_then_timed_out(scenario: Scenario) -> None:
    s = scenario
    word, took_s = s.outputs["hole"][:2], float(s.outputs["hole"][2])
    assert word == ["timed", "out"]
    rows = s.rows(SESSIONS, "hole", rport=HOLE_PORT)
    assert len(rows) == 1, (s.rows(SESSIONS, "hole"), s.run.meta()["lost_events"])
    (r,) = rows
    assert (r["end"], r["side"]) == ("timeout", "client")
    # one retry asked for; the give-up time is checked when a timer fires, so
    # a timer a tick early sends one more: the kernel's count says which
    assert r["syn_retrans_segs"] == s.delta["hole"]["TcpExtTCPSynRetrans"] >= 1
    # given up once the time SYN_RETRIES timeouts take had passed, inside the call
    assert TIMER_SLACK * syn_timer_s(SYN_RETRIES + 1) * 1e6 <= r["connect_us"] <= took_s * 1e6
    assert r["srtt_us"] in (0, None) and r["min_rtt_us"] is None


def test_crowded_listener_drops_are_the_namespaces_listen_drops(scenario: Scenario) -> None:
    s = scenario
    rows = s.rows(LISTENERS, "srv", lport=s.ports["crowd"])
    assert rows, s.run.records(LISTENERS)
    # the namespace's only listener: every drop ListenDrops counted there is
    # its; an ACK dropped for the full queue is counted twice on the socket
    # (once with ListenDrops, once as the segment's discard), and every such
    # ACK is an overflow
    drops, delta = sum(r["listen_drops"] for r in rows), s.delta["srv"]
    assert 0 < delta["TcpExtListenDrops"] <= drops <= (delta["TcpExtListenDrops"]
                                                       + delta["TcpExtListenOverflows"])
    assert {r["accept_limit_conns"] for r in rows} == {BACKLOG}
    # full is one over the limit (sk_acceptq_is_full); a reading may catch it
    assert all(r["accept_queue_conns"] <= BACKLOG + 1 for r in rows)
    assert {r["laddr"] for r in rows} == {"0.0.0.0"} and len({r["ino"] for r in rows}) == 1
    # as documented and published: every field, in order, each line valid
    check = validator(s.run.meta()["format"], LISTENERS)
    for r in s.run.records(LISTENERS):
        assert tuple(r) == LOGS["listeners"].field_names
        check.validate(r)


def test_nftables_drops_are_the_rules_own_counts(scenario: Scenario) -> None:
    s = scenario
    # the rules' counters: the packets nftables dropped, and their bytes at the hook
    for name, port in (("loss", LOSSY_PORT), ("hole", HOLE_PORT)):
        rows = s.rows(DROPS, name, reason="NETFILTER_DROP")
        assert rows and {(r["protocol"], r["daddr"], r["dport"]) for r in rows} == {
            ("tcp", "127.0.0.1", port)}, rows
        assert all(r["endpoints_kept"] for r in rows)
        assert (sum(r["dropped_packets"] for r in rows), sum(r["skb_bytes"] for r in rows)) == \
            s.nft[name][port]
    # every SYN to the hole was dropped: the first and each one resent
    (session,) = s.rows(SESSIONS, "hole", rport=HOLE_PORT)
    assert s.nft["hole"][HOLE_PORT][0] == session["syn_retrans_segs"] + 1
    check = validator(s.run.meta()["format"], DROPS)
    for r in s.run.records(DROPS):
        assert tuple(r) == LOGS["drops"].field_names
        check.validate(r)
    assert s.run.meta()["lost_events"]["drops"] == 0


def test_namespace_counters_are_nstats(scenario: Scenario) -> None:
    s = scenario

    def added(ns: str, counter: str) -> int:
        return sum(r["counters"].get(counter, 0) for r in s.rows(NETSTAT, ns))

    # the namespaces' own counters, read by nstat before and after the window
    for ns, counter in (("srv", "TcpExtListenOverflows"), ("srv", "TcpExtListenDrops"),
                        ("cli", "TcpExtTCPSynRetrans"), ("hole", "TcpExtTCPSynRetrans")):
        assert added(ns, counter) == s.delta[ns][counter] > 0, (ns, counter)
    check = validator(s.run.meta()["format"], NETSTAT)
    for r in s.rows(NETSTAT, "srv"):
        assert tuple(r) == LOGS["netstat"].field_names
        check.validate(r)


def own_capture(s: Scenario) -> Path:
    """The capture with only the scenario's namespaces' lines: the host is
    shared, and other tests' listeners and paths would compete for the page."""
    ours = set(s.inode.values())
    target = s.run.directory.parent / "own"
    if not target.exists():
        target.mkdir(mode=0o700)
        shutil.copy(s.run.directory / "meta.json", target)
        for log in LOGS.values():
            if not (s.run.directory / log.file).exists():  # an opt-in probe, not asked for
                continue
            kept = [json.dumps(r) for r in s.run.records(log.file) if r.get("netns") in ours]
            (target / log.file).write_text("".join(line + "\n" for line in kept))
    return target


def findings_of(s: Scenario) -> dict[str, object]:
    return {f.cause: f for f in aggregate([open_capture(own_capture(s))]).findings}


def test_each_cause_stands_out_with_its_numbers(scenario: Scenario) -> None:
    s = scenario
    found = findings_of(s)
    overflow = found["accept_queue_overflow"].values
    assert overflow["listen_drops"] == sum(
        r["listen_drops"] for r in s.rows(LISTENERS, "srv", lport=s.ports["crowd"]))
    assert overflow["limit"] == BACKLOG and overflow["netns"] == s.inode["srv"]
    assert overflow["overflows"] == s.delta["srv"]["TcpExtListenOverflows"]
    assert overflow["sessions"] == CROWD_CLIENTS
    assert overflow["syn_retrans_segs"] == (s.delta["cli"]["TcpExtTCPSynRetrans"]
                                            + s.delta["srv"]["TcpExtTCPSynRetrans"])
    port = s.ports["crowd"]
    waits = [r["connect_us"] for r in s.rows(SESSIONS, "cli", rport=port)
             + s.rows(SESSIONS, "srv", lport=port)]
    assert overflow["slowest_us"] == max(waits)
    lossy = found["lossy_path"].values
    client = s.rows(BANDWIDTH, "loss", rport=LOSSY_PORT)
    assert lossy["remote"] == f"127.0.0.1:{LOSSY_PORT}"
    assert lossy["resent_segs"] == sum(r["retrans_segs"] for r in client) > 0
    assert lossy["sent_segs"] == sum(r["sent_segs"] for r in client)
    # every payload segment once at least (MSS under the 1500-byte MTU), and the resends
    assert lossy["sent_segs"] >= LOSSY_BYTES // 1448 + lossy["resent_segs"]
    # the drops on its path, by the kernel's reason: nftables' own count
    assert lossy["drops"]["NETFILTER_DROP"] == s.nft["loss"][LOSSY_PORT][0]
    dropped = found["packet_drops"].values
    assert dropped["total"] == sum(r["dropped_packets"] for r in s.run.records(DROPS)
                                   if r["netns"] in s.inode.values())


def timed_sessions(s: Scenario, ns: str, port: int, took: dict[int, dict[str, float]]
                   ) -> list[dict]:
    """A slow client's sessions, each checked against the client's own clock:
    its handshake inside connect(), its whole life inside connect() to close()
    returning (a linger: the FIN acknowledged), its lowest RTT no longer than
    the handshake's round trip."""
    rows = s.rows(SESSIONS, ns, rport=port)
    assert sorted(r["lport"] for r in rows) == sorted(took)
    for r in rows:
        t = took[r["lport"]]
        assert (r["side"], r["end"], r["syn_retrans_segs"]) == ("client", "normal", 0), r
        assert r["min_rtt_us"] <= r["connect_us"] <= t["connect_s"] * 1e6, (r, t)
        assert r["duration_ms"] <= t["session_s"] * 1000 + 1, (r, t)  # ms rounding
    return rows


def test_a_slow_server_and_a_slow_path_are_told_apart(scenario: Scenario) -> None:
    s = scenario
    found = findings_of(s)
    server, path = found["slow_server"].values, found["slow_path"].values
    assert server["remote"] == f"127.0.0.1:{s.ports['slow']}"
    assert path["remote"] == f"{s.path_address}:{s.ports['path']}"
    # the server's sessions held its wait; the RTT is loopback's
    server_rows = timed_sessions(s, "slow", s.ports["slow"], s.client_s["slow"])
    assert all(r["duration_ms"] >= TIMER_SLACK * SLOW_MS for r in server_rows)
    # the path's: every packet held by the delay line (its clock is read before
    # each write, so no slack), a few round trips each
    path_rows = timed_sessions(s, "near", s.ports["path"], s.client_s["path"])
    assert all(r["min_rtt_us"] >= 2 * PATH_DELAY_MS * 1000 for r in path_rows)
    assert all(r["duration_ms"] >= PATH_ROUND_TRIPS * 2 * PATH_DELAY_MS for r in path_rows)
    # the findings' numbers are those sessions' (exact percentiles of a few)
    for found_values, rows in ((server, server_rows), (path, path_rows)):
        assert found_values["sessions"] == len(rows) == SLOW_REQUESTS
        assert found_values["p50_ms"] in {r["duration_ms"] for r in rows}
        assert found_values["max_ms"] == max(r["duration_ms"] for r in rows)
        assert found_values["rtt_us"] in {r["min_rtt_us"] for r in rows}
    # the server: many round trips long; the path: a few
    assert server["rtt_us"] * SERVER_ROUND_TRIPS < server["p50_ms"] * 1000
    assert path["rtt_us"] * SERVER_ROUND_TRIPS >= path["p50_ms"] * 1000


def test_the_page_names_each_cause_under_what_stands_out(scenario: Scenario) -> None:
    s = scenario
    found = findings_of(s)
    page = write_report(own_capture(s)).read_text()
    standout = page[page.index('id="standout"'):page.index('id="timeline"')]
    for cause in ("accept_queue_overflow", "lossy_path", "slow_server", "slow_path",
                  "packet_drops"):
        assert say(found[cause]) in standout, cause
    assert f"{found['accept_queue_overflow'].values['listen_drops']:,} handshake drops" \
        in standout
    assert "the server is slow" in standout and "a lossy path" in standout
    assert "round trips on a slow path" in standout
    assert "NETFILTER_DROP ×" in standout
