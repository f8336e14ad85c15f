"""A fleet report from two real captures: a client in one network namespace
and a server in another, joined by a veth pair, each captured by its own
`nettrail capture` with its own hostname (a UTS namespace). BPF sees the whole
machine, so each capture is filtered to its host's process (-p), as a real
host would only see its own sockets. A transfer of known size each way must
come out as one conversation with both pids and exact bytes on both ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nettrail.report.aggregate import aggregate
from nettrail.report.reader import open_captures
from helpers import TOOLS, CaptureRun, NetNs, connect_netns, nettrail

SERVICE_PORT = 5432  # not in the ephemeral range: sides are guessed right where not known
CLIENT_BYTES = 123_456
SERVER_BYTES = 654_321
PEER = [sys.executable, str(TOOLS / "peer.py")]


@pytest.fixture
def two_hosts() -> Iterator[tuple[NetNs, NetNs, str]]:
    """Namespaces for web-3 (the client) and db-1 (the server); the server's
    address."""
    client_ns, server_ns = NetNs(f"ntfa{os.getpid()}"), NetNs(f"ntfb{os.getpid()}")
    try:
        for ns in (client_ns, server_ns):
            ns.create(resolv="nameserver 127.0.0.1\n")  # no lookups happen here
        _, server_address = connect_netns(client_ns, server_ns, "10.231.7")
        yield client_ns, server_ns, server_address
    finally:
        client_ns.delete()
        server_ns.delete()


def capture_as(host: str, directory: Path, pid: int, run_dir: Path) -> CaptureRun:
    """`nettrail capture -p PID` under the hostname `host`, with its own host
    lock (both run on this machine at once)."""
    run_dir.mkdir(mode=0o700)
    return CaptureRun(directory, "-p", str(pid), "1", "60",
                      prefix=["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"',
                              "sh"],
                      env={**os.environ, "NETTRAIL_RUN_DIR": str(run_dir)})


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_fleet_report_matches_the_two_ends(tmp_path: Path, bpf: None,
                                           two_hosts: tuple[NetNs, NetNs, str]) -> None:
    client_ns, server_ns, address = two_hosts
    server = subprocess.Popen(server_ns.exec_args(
        *PEER, "server", "--address", address, "--port", str(SERVICE_PORT),
        "--expect", str(CLIENT_BYTES),
        "--send", str(SERVER_BYTES)), stdout=subprocess.PIPE, text=True)
    port = server.stdout.readline().strip()
    client = subprocess.Popen(client_ns.exec_args(
        *PEER, "client", "--wait", "--address", address, "--port", port,
        "--send", str(CLIENT_BYTES), "--expect", str(SERVER_BYTES)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline() == "waiting\n"  # exec'd: /proc shows its name
    names = {client.pid: comm(client.pid), server.pid: comm(server.pid)}
    web, db = tmp_path / "web-3", tmp_path / "db-1"
    captures = [capture_as("web-3", web, client.pid, tmp_path / "run-web"),
                capture_as("db-1", db, server.pid, tmp_path / "run-db")]
    try:
        client.communicate("go\n", timeout=60)
        server.communicate(timeout=60)
        assert (client.returncode, server.returncode) == (0, 0)
    finally:
        for run in captures:
            run.interrupt(signal.SIGINT)
        for run in captures:
            status, _, err = run.finish()
            assert status == 0, err
    assert [run.meta()["host"] for run in captures] == ["web-3", "db-1"]

    out = tmp_path / "fleet.html"
    result = nettrail("report", str(web), str(db), "-o", str(out))
    assert result.returncode == 0, result.stderr

    conversations = aggregate(open_captures([web, db])).conversations
    (row,) = conversations.rows
    client_label = f"{names[client.pid]} ({client.pid})"
    server_label = f"{names[server.pid]} ({server.pid})"
    assert row.text == f"web-3:{client_label} → db-1:{server_label}"
    assert (row.service, row.connections, row.open) == (f"{address}:{port}", 1, 0)
    assert (row.client_tx_bytes, row.server_rx_bytes) == (CLIENT_BYTES, CLIENT_BYTES)
    assert (row.server_tx_bytes, row.client_rx_bytes) == (SERVER_BYTES, SERVER_BYTES)
    assert (conversations.sessions, conversations.matched) == (2, 2)
    html = out.read_text()
    assert (f'>web-3:{client_label}</a> → <a href="#t-groups" '
            f'data-filter="db-1:{server_label}">db-1:{server_label}</a>') in html
