"""A real connection storm against a small line budget: the sessions log
stays within the budget, and every session of the storm is counted, as a
line or in a summary, against the churn's own count of its connections."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nettrail.format import LOGS, SESSIONS
from helpers import CaptureRun, NetNs

pytestmark = pytest.mark.kernel

BUDGET = 50          # session lines per interval: far fewer than the storm makes
STORM_S = 4.0        # several 1 s intervals of it
RATE = 500           # connections a second at most: a storm, yet gentle on a shared machine
SUMMARIES = LOGS["sessions"].summary.file

# Accepts and closes; connects, reads to EOF and closes, at most RATE a second
# for STORM_S seconds; prints its port, then the connections it completed.
CHURN = """
import socket, sys, threading, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(512)
port = listener.getsockname()[1]
def serve():
    while True:
        conn, _ = listener.accept()
        conn.close()
threading.Thread(target=serve, daemon=True).start()
print(port, flush=True)
sys.stdin.readline()
done, start, rate = 0, time.monotonic(), float(sys.argv[2])
while time.monotonic() < start + float(sys.argv[1]):
    time.sleep(max(0.0, start + done / rate - time.monotonic()))
    with socket.create_connection(("127.0.0.1", port)) as s:
        while s.recv(64):
            pass
    done += 1
print(done, flush=True)
"""


@pytest.fixture
def storm_netns() -> Iterator[NetNs]:
    ns = NetNs(f"nt-storm-{os.getpid()}")
    ns.create("nameserver 127.0.0.1\n")
    yield ns
    ns.delete()


def test_a_storm_stays_within_the_budget_and_every_session_is_counted(
        tmp_path: Path, bpf: None, storm_netns: NetNs) -> None:
    churn = subprocess.Popen(storm_netns.exec_args(sys.executable, "-c", CHURN, str(STORM_S),
                                                   str(RATE)),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(churn.stdout.readline())
        inode = os.stat(f"/run/netns/{storm_netns.name}").st_ino
        # a long window ended once the storm is over: all of it falls inside
        run = CaptureRun(tmp_path / "capture", "1", "300", "--probes", "sessions",
                         "--session-lines", str(BUDGET))
        churn.stdin.write("go\n")
        churn.stdin.flush()
        made = int(churn.stdout.readline())
        churn.wait(timeout=30)
    finally:
        churn.kill()
    run.interrupt(signal.SIGINT)
    returncode, _, stderr = run.finish()
    assert returncode == 0, stderr
    meta = run.meta()
    lines = run.records(SESSIONS)
    summaries = run.records(SUMMARIES)
    # within the budget: at most BUDGET lines per interval, the partial last one too
    assert len(lines) <= BUDGET * (meta["intervals_done"] + 1)
    # sustained: summaries in more than one interval
    assert len({s["interval"] for s in summaries}) >= 2
    budget = meta["line_budgets"]["sessions"]
    assert budget == {"interval_lines": BUDGET, "summarised": sum(
        s["sessions"] for s in summaries), "summary_lines": len(summaries)}
    assert meta["summary"]["sessions"] == len(lines) + budget["summarised"]
    assert meta["lost_events"]["sessions"] == 0, meta["lost_events_by_cause"]
    assert meta["summary"]["summarised_sessions"] == budget["summarised"]
    # every session of the storm counted once: both ends of each connection it made
    ours_lines = [r for r in lines if r["netns"] == inode and port in (r["lport"], r["rport"])]
    ours = [s for s in summaries if s["netns"] == inode and s["port"] == port]
    print(f"storm: {made} connections; {len(lines)} lines, {len(summaries)} summary lines "
          f"over {meta['intervals_done']} intervals")
    assert made > 2 * BUDGET
    assert len(ours_lines) + sum(s["sessions"] for s in ours) == 2 * made
    assert {(s["side"], s["state"], s["end"]) for s in ours} <= {
        ("client", "closed", "normal"), ("server", "closed", "normal")}
    assert sum(sum(s["durations_log2_us"]) for s in ours) == sum(s["sessions"] for s in ours)
