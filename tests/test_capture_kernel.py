"""The three probes against the real kernel: one capture around a scripted
workload with known sizes, processes and delays; exact results asserted."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nettrail.capture.libcs import find_libcs
from nettrail.format import BANDWIDTH, DNS, LOGS, SESSIONS
from helpers import TOOLS, CaptureRun, NetNs, intervals_done, require_bpf

# The scenario's window is long and ended by SIGINT once the workload is done,
# so every part of it is inside the window however slow the machine (a VM
# under TCG); a full uninterrupted window has its own test.
INTERVAL_S, COUNT = 1, 300
# the netns resolver's timeout (conftest: timeout:2 attempts:1), and a longer
# one for the lookup that must still be pending when the window ends
RESOLVER_TIMEOUT_MS, PENDING_TIMEOUT_S = 2_000, 30
DNS_PORT_HEX = "0035"
SLOW_ANSWER_MS = 300  # tools/dnsserver.py: slow.* is answered after 300 ms
COMM = os.path.basename(sys.executable)[:15]
PRE_BEFORE, PRE_DURING, OPEN_BYTES = 1_000, 2_000, 777


@dataclass
class Transfer:
    family: int
    client_to_server: int
    server_to_client: int
    server: subprocess.Popen
    client: subprocess.Popen
    port: int


def start_transfer(family: int, c2s: int, s2c: int) -> Transfer:
    peer = [sys.executable, str(TOOLS / "peer.py")]
    server = subprocess.Popen([*peer, "server", "--family", str(family), "--send", str(s2c),
                               "--expect", str(c2s)], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    client = subprocess.Popen([*peer, "client", "--family", str(family), "--port", str(port),
                               "--send", str(c2s), "--expect", str(s2c)])
    return Transfer(family, c2s, s2c, server, client, port)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback pair inside this process: (client, accepted)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    return client, accepted


def recv_exactly(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        got += len(sock.recv(n - got))


@dataclass
class Scenario:
    run: CaptureRun
    returncode: int
    stderr: str
    v4: Transfer
    v6: Transfer
    pre: tuple[int, int]       # local ports of the pre-window pair (client, accepted)
    open_ports: tuple[int, int]
    lookups_a: int             # pids of the two lookup processes
    lookups_b: int
    pending: int
    lookup_output: str


def lookup_process(ns: NetNs, *lookups: str, res_options: str = "") -> subprocess.Popen:
    """`res_options`: this process's own resolver options (glibc's RES_OPTIONS)."""
    return ns.spawn("env", f"RES_OPTIONS={res_options}", sys.executable,
                    str(TOOLS / "lookup.py"), *lookups)


def wait_for_dns_query(pid: int, timeout_s: float = 60) -> None:
    """Until a UDP socket in the process's network namespace is connected to
    port 53 (the other lookups are done by then): its lookup is under way.
    A readiness signal, not a fixed sleep."""
    table = Path(f"/proc/{pid}/net/udp")
    deadline = time.monotonic() + timeout_s
    while not any(line.split()[2].endswith(":" + DNS_PORT_HEX)
                  for line in table.read_text().splitlines()[1:]):
        assert time.monotonic() < deadline, "the lookup sent no query"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, dns_netns: NetNs) -> Scenario:
    require_bpf()
    pre_client, pre_server = tcp_pair()
    pre_client.sendall(b"p" * PRE_BEFORE)
    recv_exactly(pre_server, PRE_BEFORE)

    run = CaptureRun(tmp_path_factory.mktemp("scenario") / "capture", str(INTERVAL_S),
                     str(COUNT))
    v4 = start_transfer(4, 100_000, 7_000)
    v6 = start_transfer(6, 30_000, 2_000)
    # the first lookup of a process loads glibc's resolver: a warm-up, so the
    # fast one measures the answer alone
    lookups_a = lookup_process(dns_netns, "getaddrinfo:warmup.nettrail.test",
                               "getaddrinfo:fast.nettrail.test",
                               "getaddrinfo:slow.nettrail.test",
                               "gethostbyname:fast.nettrail.test")
    lookups_b = lookup_process(dns_netns, "getaddrinfo:missing.nettrail.test",
                               "gethostbyname:missing.nettrail.test",
                               "gethostbyname_r:missing.nettrail.test",
                               "getaddrinfo:hang.nettrail.test")
    # the pre-window session carries traffic in the window, then closes
    pre_client.sendall(b"p" * PRE_DURING)
    recv_exactly(pre_server, PRE_DURING)
    pre = (pre_client.getsockname()[1], pre_server.getsockname()[1])
    pre_client.close()
    pre_server.recv(1)
    pre_server.close()
    # a session that is still open when the window ends
    open_client, open_server = tcp_pair()
    open_client.sendall(b"o" * OPEN_BYTES)
    recv_exactly(open_server, OPEN_BYTES)
    # a lookup still unanswered at window end
    pending = lookup_process(dns_netns, "getaddrinfo:hang.nettrail.test",
                             res_options=f"timeout:{PENDING_TIMEOUT_S} attempts:1")
    outputs = []
    for proc in (v4.server, v4.client, v6.server, v6.client, lookups_a, lookups_b):
        out, _ = proc.communicate(timeout=60)
        outputs.append(out or "")
        assert proc.returncode == 0, f"workload process failed: {proc.args}"
    wait_for_dns_query(pending.pid)
    run.interrupt()
    returncode, _, stderr = run.finish()
    pending.kill()
    pending.wait(timeout=30)
    open_ports = (open_client.getsockname()[1], open_server.getsockname()[1])
    open_client.close()
    open_server.close()
    return Scenario(run, returncode, stderr, v4, v6, pre, open_ports, lookups_a.pid,
                    lookups_b.pid, pending.pid, "".join(outputs))


def sessions_on(s: Scenario, port: int) -> list[dict]:
    return [r for r in s.run.records(SESSIONS) if port in (r["lport"], r["rport"])]


def bandwidth_sum(s: Scenario, pid: int, **match: object) -> tuple[int, int]:
    rows = [r for r in s.run.records(BANDWIDTH)
            if r["pid"] == pid and all(r[k] == v for k, v in match.items())]
    return sum(r["rx_bytes"] for r in rows), sum(r["tx_bytes"] for r in rows)


def test_capture_completes_with_all_probes(scenario: Scenario) -> None:
    meta = scenario.run.meta()
    assert scenario.returncode == 0, scenario.stderr
    assert meta["intervals_done"] < COUNT and meta["interrupted"]
    assert meta["ended_at"] and meta["started_at"] < meta["ended_at"]
    assert {n: p["status"] for n, p in meta["probes"].items()} == {
        "bandwidth": "ok", "sessions": "ok", "dns": "ok", "listeners": "ok", "udp": "skipped",
        "drops": "ok", "netstat": "ok"}
    assert meta["probes"]["bandwidth"]["hook"].startswith("tp_btf/")
    assert meta["lost_events"] == {"bandwidth": 0, "sessions": 0, "dns": 0, "listeners": 0,
                                   "udp": 0, "drops": 0, "netstat": 0}
    for name in (BANDWIDTH, SESSIONS, DNS, "meta.json"):
        assert (scenario.run.directory / name).stat().st_mode & 0o077 == 0


def test_records_have_exactly_the_documented_fields(scenario: Scenario) -> None:
    """The writer emits each log's described fields, in their order (udp's:
    tests/test_udp_kernel.py)."""
    for log in LOGS.values():
        if log.opt_in:
            assert not (scenario.run.directory / log.file).exists(), log.file
            continue
        records = scenario.run.records(log.file)
        # no accept queue in use here: test_why_slow_kernel checks listeners' lines
        if log.probe == "listeners" and not records:
            continue
        assert records, log.file
        assert {tuple(r) for r in records} == {log.field_names}, log.file


@pytest.mark.parametrize("family", [4, 6])
def test_bandwidth_exact_bytes_per_process(scenario: Scenario, family: int) -> None:
    t = scenario.v4 if family == 4 else scenario.v6
    client = bandwidth_sum(scenario, t.client.pid, rport=t.port)
    server = bandwidth_sum(scenario, t.server.pid, lport=t.port)
    assert client == (t.server_to_client, t.client_to_server)
    assert server == (t.client_to_server, t.server_to_client)
    rows = [r for r in scenario.run.records(BANDWIDTH) if r["pid"] == t.client.pid]
    assert {r["family"] for r in rows} == {f"ipv{family}"}
    assert {r["comm"] for r in rows} == {COMM}
    assert all(1 <= r["interval"] <= COUNT for r in rows)


@pytest.mark.parametrize("family", [4, 6])
def test_sessions_exact_bytes_and_owners(scenario: Scenario, family: int) -> None:
    t = scenario.v4 if family == 4 else scenario.v6
    by_pid = {r["pid"]: r for r in sessions_on(scenario, t.port)}
    assert set(by_pid) == {t.client.pid, t.server.pid}
    client, server = by_pid[t.client.pid], by_pid[t.server.pid]
    # the accepted connection belongs to the server, not the client that ran
    # when its handshake completed
    assert (server["lport"], server["comm"]) == (t.port, COMM)
    assert (client["rport"], client["tx_bytes"], client["rx_bytes"]) == (
        t.port, t.client_to_server, t.server_to_client)
    assert (server["tx_bytes"], server["rx_bytes"]) == (t.server_to_client,
                                                        t.client_to_server)
    for r in (client, server):
        assert r["state"] == "closed" and r["family"] == f"ipv{family}"
        assert r["opened_at"] is not None and 0 < r["duration_ms"] < 30_000
        assert r["ts"] >= r["opened_at"]
    assert client["raddr"] == ("127.0.0.1" if family == 4 else "::1")


def test_session_spanning_window_start(scenario: Scenario) -> None:
    client_port, server_port = scenario.pre
    records = [r for r in scenario.run.records(SESSIONS) if r["lport"] in scenario.pre]
    assert len(records) == 2
    for r in records:
        assert r["opened_at"] is None and r["duration_ms"] is None
        assert r["state"] == "closed" and r["pid"] == os.getpid()
    client = next(r for r in records if r["lport"] == client_port)
    # sessions report the socket's lifetime bytes; bandwidth only the window's
    assert client["tx_bytes"] == PRE_BEFORE + PRE_DURING
    assert bandwidth_sum(scenario, os.getpid(), lport=client_port) == (0, PRE_DURING)


def test_session_open_at_window_end(scenario: Scenario) -> None:
    records = [r for r in scenario.run.records(SESSIONS) if r["lport"] in scenario.open_ports]
    assert len(records) == 2
    client = next(r for r in records if r["lport"] == scenario.open_ports[0])
    assert client["state"] == "open" and client["opened_at"] is not None
    assert (client["tx_bytes"], client["rx_bytes"]) == (OPEN_BYTES, 0)


def lookups(s: Scenario, host: str) -> list[dict]:
    """The scenario's own lookups of `host` (other tests on the machine may
    look up the same names meanwhile)."""
    ours = {s.lookups_a, s.lookups_b, s.pending}
    return [r for r in s.run.records(DNS) if r["name"] == host and r["pid"] in ours]


def test_dns_fast_and_slow_lookup_latency(scenario: Scenario) -> None:
    fast = [r for r in lookups(scenario, "fast.nettrail.test") if r["function"] == "getaddrinfo"]
    slow = lookups(scenario, "slow.nettrail.test")
    assert len(fast) == 1 and len(slow) == 1
    assert fast[0]["ok"] and fast[0]["addresses"] == ["127.0.0.42"] and fast[0]["error"] is None
    # bands with room for emulation (a VM under TCG): faster than the slow
    # answer's deliberate delay alone; that delay plus at most 1.2 s
    assert fast[0]["latency_ms"] < SLOW_ANSWER_MS
    assert slow[0]["ok"] and SLOW_ANSWER_MS <= slow[0]["latency_ms"] < SLOW_ANSWER_MS + 1200
    assert {fast[0]["pid"], slow[0]["pid"]} == {scenario.lookups_a}
    assert fast[0]["comm"] == COMM


def test_dns_failures_named_and_attributed_to_second_process(scenario: Scenario) -> None:
    missing = {r["function"]: r for r in lookups(scenario, "missing.nettrail.test")}
    assert set(missing) == {"getaddrinfo", "gethostbyname", "gethostbyname_r"}
    assert missing["getaddrinfo"]["error"] == "EAI_NONAME"
    # gethostbyname runs gethostbyname_r inside glibc: one record, its h_errno
    assert missing["gethostbyname"]["error"] == "HOST_NOT_FOUND"
    assert missing["gethostbyname_r"]["error"] == "HOST_NOT_FOUND"
    assert all(not r["ok"] and r["pid"] == scenario.lookups_b for r in missing.values())


def test_dns_timeout_and_pending(scenario: Scenario) -> None:
    hang = lookups(scenario, "hang.nettrail.test")
    done = [r for r in hang if not r["pending"]]
    pending = [r for r in hang if r["pending"]]
    assert len(done) == 1 and done[0]["error"] == "EAI_AGAIN"
    assert done[0]["latency_ms"] >= RESOLVER_TIMEOUT_MS
    assert len(pending) == 1 and 0 < pending[0]["latency_ms"] < PENDING_TIMEOUT_S * 1000
    assert pending[0]["ok"] is False and pending[0]["addresses"] == []


def test_gethostbyname_reports_addresses(scenario: Scenario) -> None:
    ghbn = [r for r in lookups(scenario, "fast.nettrail.test")
            if r["function"] == "gethostbyname"]
    assert len(ghbn) == 1 and ghbn[0]["ok"] and ghbn[0]["addresses"] == ["127.0.0.42"]


def test_timestamps_share_one_clock(scenario: Scenario) -> None:
    meta = scenario.run.meta()
    from datetime import datetime
    start = datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00")).timestamp()
    end = datetime.fromisoformat(meta["ended_at"].replace("Z", "+00:00")).timestamp()
    for name in (BANDWIDTH, SESSIONS, DNS):
        for r in scenario.run.records(name):
            assert start - 1 <= r["ts"] <= end + 1, (name, r)


def test_full_window_completes_uninterrupted(tmp_path, bpf: None) -> None:
    run = CaptureRun(tmp_path / "capture", "0.5", "2")
    returncode, _, stderr = run.finish()
    assert returncode == 0, stderr
    meta = run.meta()
    assert (meta["intervals_done"], meta["interrupted"]) == (2, False)
    assert meta["ended_at"] and meta["started_at"] < meta["ended_at"]
    assert {n: p["status"] for n, p in meta["probes"].items()} == {
        "bandwidth": "ok", "sessions": "ok", "dns": "ok", "listeners": "ok", "udp": "skipped",
        "drops": "ok", "netstat": "ok"}


def wait_for_passes(run: CaptureRun, passes: int, timeout_s: float = 120) -> None:
    """Until the capture has finished `passes` more intervals (meta.json's
    intervals_done, rewritten at each interval's end)."""
    target, deadline = intervals_done(run.directory) + passes, time.monotonic() + timeout_s
    while intervals_done(run.directory) < target:
        assert run.proc.poll() is None and time.monotonic() < deadline, "no pass in time"
        time.sleep(0.05)


def test_sessions_alone_make_their_own_passes(tmp_path, bpf: None) -> None:
    """Without the bandwidth probe, sessions learns owners from its own passes."""
    pre_client, pre_server = tcp_pair()
    pre_client.sendall(b"p" * PRE_BEFORE)
    recv_exactly(pre_server, PRE_BEFORE)
    pre_ports = (pre_client.getsockname()[1], pre_server.getsockname()[1])
    # an open-ended window, stopped once a pass ran after the transfer: under
    # emulation on a loaded machine the peers take seconds just to start
    run = CaptureRun(tmp_path / "capture", "1", "600", "--probes", "sessions")
    t = start_transfer(4, 5_000, 300)
    pre_client.sendall(b"p" * PRE_DURING)
    recv_exactly(pre_server, PRE_DURING)
    for proc in (t.server, t.client):
        proc.communicate(timeout=120)
    wait_for_passes(run, 2)
    run.interrupt()
    returncode, _, stderr = run.finish()
    pre_client.close()
    pre_server.close()
    assert returncode == 0, stderr
    hook = run.meta()["probes"]["sessions"]["hook"]
    assert hook.startswith("tp_btf/inet_sock_set_state + iter/task_file"), hook
    by_pid = {r["pid"]: r for r in run.records(SESSIONS) if t.port in (r["lport"], r["rport"])}
    assert by_pid[t.server.pid]["lport"] == t.port
    assert (by_pid[t.client.pid]["tx_bytes"], by_pid[t.client.pid]["rx_bytes"]) == (5_000, 300)
    # the pre-window session carried traffic: known, still open, owner known
    pre = [r for r in run.records(SESSIONS) if r["lport"] in pre_ports]
    assert len(pre) == 2
    assert all(r["state"] == "open" and r["opened_at"] is None and r["pid"] == os.getpid()
               for r in pre)
    assert {r["tx_bytes"] for r in pre} == {PRE_BEFORE + PRE_DURING, 0}


WAIT_THEN_LOOKUP = "import socket, sys; sys.stdin.readline(); socket.getaddrinfo('localhost', None)"


def test_dns_covers_a_second_libc(tmp_path, bpf: None) -> None:
    """A process on another libc file (as in a container) is found and probed."""
    libc_dir = tmp_path / "otherlibc"
    libc_dir.mkdir()
    system_libc = next(c.path for c in find_libcs([os.getpid()]))
    shutil.copy(system_libc, libc_dir / "libc.so.6")
    other = subprocess.Popen([sys.executable, "-c", WAIT_THEN_LOOKUP], stdin=subprocess.PIPE,
                             text=True, env={**os.environ, "LD_LIBRARY_PATH": str(libc_dir)})
    try:
        maps = Path(f"/proc/{other.pid}/maps")
        deadline = time.monotonic() + 10
        while str(libc_dir) not in maps.read_text():
            assert time.monotonic() < deadline, "the copied libc was not loaded"
            time.sleep(0.05)
        run = CaptureRun(tmp_path / "capture", "1", "2", "--probes", "dns")
        other.communicate("go\n", timeout=30)
        returncode, _, stderr = run.finish()
    finally:
        other.kill()
    assert returncode == 0, stderr
    libcs = run.meta()["probes"]["dns"]["libcs"]
    copied = [c for c in libcs if c["path"] == str(libc_dir / "libc.so.6")]
    assert len(copied) == 1 and "getaddrinfo" in copied[0]["functions"]
    assert [r["name"] for r in run.records(DNS) if r["pid"] == other.pid] == ["localhost"]
