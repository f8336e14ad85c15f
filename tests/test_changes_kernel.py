"""The comparison with a baseline over real captures: a steady workload
(tests/tools/changecase.py) in a network namespace of its own, captured in
three windows, then the same workload with known differences (a new
destination, one program at 5x, a refused port, a name 12x slower, a new
path nftables drops segments on). Every difference is reported with both
numbers; no pair of the steady windows reports anything. The captures are
made once for the module; the workload starts once the capture has its
probes attached (loading them is slow in emulated kernels: not under load)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nettrail.report.changes import Change, compare
from nettrail.report.profile import Profile, profile
from nettrail.report.reader import open_capture
from helpers import TOOLS, CaptureRun, NetNs, go, require_bpf

pytestmark = pytest.mark.kernel

INTERVAL_S, COUNT = "1", "6"
STEADY_WINDOWS = 3
# one in ten segments to nt-bulk's port dropped on input: the sender resends
DROPS = """
table inet nettrail_changes {
	chain in {
		type filter hook input priority 0;
		tcp dport 9105 numgen random mod 10 == 0 drop
	}
}
"""


def window(ns: NetNs, mode: str, directory: Path, procs: list[subprocess.Popen]) -> Profile:
    """One capture of the workload in `mode`, started once the probes are attached."""
    proc = subprocess.Popen(ns.exec_args(sys.executable, str(TOOLS / "changecase.py"), mode),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    ready = proc.stdout.readline().split()
    assert ready[:1] == ["ready"], f"changecase.py {mode} did not start"
    run = CaptureRun(directory, INTERVAL_S, COUNT, *(a for p in ready[1:] for a in ("-p", p)))
    go(proc)
    status, _, err = run.finish()
    assert status == 0, err
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    made = open_capture(directory)
    try:
        return profile(made)
    finally:
        made.close()


FAILED: list[str] = []  # a module fixture that failed is not made again for every test


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Profile],
                                                                        Profile]]:
    require_bpf()
    if FAILED:
        pytest.fail(f"the captures failed: {FAILED[0]}")
    root = tmp_path_factory.mktemp("changes")
    ns = NetNs(f"nt-chg-{os.getpid()}")
    ns.create(resolv="nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    procs: list[subprocess.Popen] = []
    try:
        try:
            steady = [window(ns, "baseline", root / f"steady-{n}", procs)
                      for n in range(STEADY_WINDOWS)]
            subprocess.run(ns.exec_args("nft", "-f", "-"), input=DROPS, text=True,
                           check=True)
            incident = window(ns, "incident", root / "incident", procs)
        except Exception as exc:
            FAILED.append(str(exc)[:2000])
            raise
        yield steady, incident
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ns.delete()


def find(items: list[Change], kind: str, subject: str, metric: str | None = None) -> Change:
    hits = [c for c in items if c.kind == kind and c.subject == subject
            and (metric is None or c.metric == metric)]
    assert hits, f"no {kind} of {subject}: {[(c.kind, c.subject, c.metric) for c in items]}"
    return hits[0]


def test_each_difference_of_the_incident_is_reported(captures) -> None:
    """The rates as measured (an emulated kernel runs the workload slower than
    planned): what the workload fixes is the ratio and that each is there."""
    steady, incident = captures
    items = compare(steady[0], incident, "test").items
    new = find(items, "new destination", "127.0.0.1:9102")
    assert new.baseline == 0 and new.current > 0                     # 2.5 sessions/s planned
    poll = find(items, "rate", "nt-poll", "sessions/s")
    assert 0 < poll.baseline <= 2.5 and poll.current >= 3 * poll.baseline  # 2/s -> 10/s
    refused = find(items, "failure", "127.0.0.1:9104", "refused/s")
    assert refused.baseline == 0 and refused.current > 0
    slow = find(items, "dns latency", "api.nettrail.test")
    assert slow.detail == "slower" and slow.current >= 3 * slow.baseline and slow.current >= 60
    resent = find(items, "retransmissions", "127.0.0.1:9105")
    assert resent.baseline == 0 and resent.current > 0.1


@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (0, 2), (2, 0)])
def test_windows_of_the_same_workload_report_nothing(captures, pair: tuple[int, int]) -> None:
    steady, _ = captures
    changes = compare(steady[pair[0]], steady[pair[1]], "test")
    assert changes.items == [] and changes.checked >= 6  # 3 programs, 2 services, 1 name
