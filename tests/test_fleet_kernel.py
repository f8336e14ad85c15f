"""A fleet report from two real captures: a client in one network namespace
and a server in another, joined by a veth pair, each captured by its own
`nettrail capture` with its own hostname (a UTS namespace). BPF sees the whole
machine, so each capture is filtered to its host's process (-p), as a real
host would only see its own sockets. A transfer of known size each way must
come out as one conversation with both pids and exact bytes on both ends."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from nettrail.report.aggregate import aggregate
from nettrail.report.reader import open_captures
from helpers import CaptureRun, HostPair, as_host, nettrail

SERVICE_PORT = 5432  # not in the ephemeral range: sides are guessed right where not known
CLIENT_BYTES = 123_456
SERVER_BYTES = 654_321


@pytest.fixture
def hosts() -> Iterator[HostPair]:
    pair = HostPair(str(os.getpid()), SERVICE_PORT, CLIENT_BYTES, SERVER_BYTES)
    try:
        yield pair
    finally:
        pair.close()


def capture_as(host: str, directory: Path, pid: int, run_dir: Path) -> CaptureRun:
    """`nettrail capture -p PID` as `host`, with its own host lock (both
    run on this machine at once)."""
    run_dir.mkdir(mode=0o700)
    return CaptureRun(directory, "-p", str(pid), "1", "60", prefix=as_host(host),
                      env={**os.environ, "NETTRAIL_RUN_DIR": str(run_dir)})


def test_fleet_report_matches_the_two_ends(tmp_path: Path, bpf: None, hosts: HostPair
                                           ) -> None:
    web, db = tmp_path / "web-3", tmp_path / "db-1"
    captures = [capture_as("web-3", web, hosts.client.pid, tmp_path / "run-web"),
                capture_as("db-1", db, hosts.server.pid, tmp_path / "run-db")]
    try:
        hosts.go()
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
    assert row.text == f"web-3:{hosts.client_label} → db-1:{hosts.server_label}"
    assert (row.service, row.connections, row.open) == (f"{hosts.address}:{SERVICE_PORT}", 1, 0)
    assert (row.client_tx_bytes, row.server_rx_bytes) == (CLIENT_BYTES, CLIENT_BYTES)
    assert (row.server_tx_bytes, row.client_rx_bytes) == (SERVER_BYTES, SERVER_BYTES)
    assert (conversations.sessions, conversations.matched) == (2, 2)
    assert hosts.conversation_html("web-3", "db-1") in out.read_text()
