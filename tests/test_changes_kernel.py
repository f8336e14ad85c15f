"""The comparison with a baseline over real captures: a steady workload
(tests/tools/changecase.py) in a network namespace of its own, captured in
three windows, then the same workload with known differences (a new
destination, one program at 5x, a refused port, a name 20x slower, a path
nftables drops segments on). Every difference is reported with both
numbers, each checked against the workload's own account of what it did in
the window (its log); no pair of the steady windows reports anything. The
captures are made once for the module."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nettrail.format.meta import parse_time
from nettrail.report.changes import Change, compare
from nettrail.report.profile import Profile, profile
from nettrail.report.reader import open_capture
from helpers import TOOLS, CaptureRun, NetNs, require_bpf

# What this tests is the comparison of real captures, the same on every
# kernel (the captures themselves are the other kernel tests'); its workload's
# rates are statistics, which a loaded TCG VM keeps only mostly (3 of 4 runs
# on 6.1): on the host's kernel only (docs/kernels.md).
pytestmark = [pytest.mark.kernel, pytest.mark.host_only]

INTERVAL_S, COUNT = "1", "12"
STEADY_WINDOWS = 3
# what changecase.py does: its answers' delay, its actions per second
DNS_DELAY_MS = {"baseline": 10.0, "incident": 200.0}
BASELINE_RATES = {("nt-fetch", "lookup:ok"): 2.5, ("nt-fetch", "9101:ok"): 1.0,
                  ("nt-poll", "9101:ok"): 1.0, ("nt-bulk", "9105:ok"): 1.0}
# nt-bulk left out: its losses (the incident) may hold a session past its second
INCIDENT_RATES = {**{k: v for k, v in BASELINE_RATES.items() if k[0] != "nt-bulk"},
                  ("nt-poll", "9101:ok"): 5.0, ("nt-fetch", "9102:ok"): 1.0,
                  ("nt-fetch", "9104:refused"): 1.0}
# one in ten segments to nt-bulk's port dropped on input: the sender resends
DROPS = """
table inet nettrail_changes {
	chain in {
		type filter hook input priority 0;
		tcp dport 9105 numgen random mod 10 == 0 drop
	}
}
"""


@dataclass
class Window:
    """One capture and what the workload logged doing while its probes were on."""
    profile: Profile
    actions: list[tuple[str, str, float]]   # (comm, what, ms)
    seconds: float                          # from the probes' start to the window's end

    def count(self, comm: str, what: str) -> int:
        return sum(1 for c, w, _ in self.actions if (c, w) == (comm, what))

    def rate(self, comm: str, what: str) -> float:
        return self.count(comm, what) / self.seconds

    def median_ms(self, comm: str, what: str) -> float:
        return statistics.median(ms for c, w, ms in self.actions if (c, w) == (comm, what))

    def __str__(self) -> str:
        kinds = sorted({(c, w) for c, w, _ in self.actions})
        names = [(n, a.lookups, a.latency_ms.quantile(0.5), a.latency_ms.quantile(0.95))
                 for n, a in self.profile.names.top()]
        return ", ".join(f"{c} {w} {self.rate(c, w):.2f}/s" for c, w in kinds) + (
            f" over {self.seconds:.1f} s (window {self.profile.seconds:.1f} s); "
            f"names (lookups, p50, p95 ms): {names}")


def workload(ns: NetNs, mode: str, log: Path) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(ns.exec_args(sys.executable, str(TOOLS / "changecase.py"), mode,
                                         str(log)), stdout=subprocess.PIPE, text=True)
    ready = proc.stdout.readline().split()
    assert ready[:1] == ["ready"], f"changecase.py {mode} did not start"
    return proc, ready[1:]


def capture(ns: NetNs, mode: str, directory: Path) -> Window:
    """One window of the workload: it starts once the probes are attached (their
    loading, slow under emulation, has the CPU to itself)."""
    log = directory.with_suffix(".log")
    proc, pids = workload(ns, mode, log)
    try:
        run = CaptureRun(directory, INTERVAL_S, COUNT, "--probes", "bandwidth,sessions,dns",
                         *(a for p in pids for a in ("-p", p)))
        proc.send_signal(signal.SIGUSR1)   # go: the capture's first line came
        attached = time.time()
        status, _, err = run.finish()
        assert status == 0, err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ended = parse_time(run.meta()["ended_at"])
    assert ended is not None
    actions = []
    for line in log.read_text().splitlines():
        comm, what, started, ms = line.split()
        if attached <= float(started) <= ended:
            actions.append((comm, what, float(ms)))
    made = open_capture(directory)
    try:
        return Window(profile(made), actions, ended - attached)
    finally:
        made.close()


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Window],
                                                                        Window]]:
    require_bpf()
    root = tmp_path_factory.mktemp("changes")
    ns = NetNs(f"nt-chg-{os.getpid()}")
    ns.create(resolv="nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
    try:
        # one segment per packet (no GSO on lo): a drop is one segment, not 64 kB of them
        subprocess.run(["ip", "-n", ns.name, "link", "set", "lo", "gso_max_segs", "1"],
                       check=True)
        steady = [capture(ns, "baseline", root / f"steady-{n}") for n in range(STEADY_WINDOWS)]
        subprocess.run(ns.exec_args("nft", "-f", "-"), input=DROPS, text=True, check=True)
        yield steady, capture(ns, "incident", root / "incident")
    finally:
        ns.delete()


def find(items: list[Change], kind: str, subject: str, metric: str | None = None) -> Change:
    hits = [c for c in items if c.kind == kind and c.subject == subject
            and (metric is None or c.metric == metric)]
    assert hits, f"no {kind} of {subject}: {[(c.kind, c.subject, c.metric) for c in items]}"
    return hits[0]


def test_each_difference_of_the_incident_is_reported(captures) -> None:
    steady, incident = captures
    base, now = steady[0], incident
    said = f"baseline: {base}; incident: {now}"
    print(said)
    items = compare(base.profile, now.profile, "test").items
    # the workload kept its schedule (give or take a stall), the poller 5x
    for window, rates in ((base, BASELINE_RATES), (now, INCIDENT_RATES)):
        for (comm, what), per_s in rates.items():
            assert window.rate(comm, what) >= 0.75 * per_s, (comm, what, said)
    assert now.rate("nt-poll", "9101:ok") >= 4.5 * base.rate("nt-poll", "9101:ok"), said
    # a rate over the window is a count over its length: as many as the workload did
    # while the probes were on (one more or less at each end)
    seconds = now.profile.seconds
    new = find(items, "new destination", "127.0.0.1:9102")
    assert new.baseline == 0 and abs(new.current * seconds - now.count(
        "nt-fetch", "9102:ok")) <= 2, said
    refused = find(items, "failure", "127.0.0.1:9104", "refused/s")
    assert refused.baseline == 0 and abs(refused.current * seconds - now.count(
        "nt-fetch", "9104:refused")) <= 2, said
    # a rate change compares the medians of the bins: the workload's steady rates
    poll = find(items, "rate", "nt-poll", "sessions/s")
    for reported, window in ((poll.baseline, base), (poll.current, now)):
        achieved = window.rate("nt-poll", "9101:ok")
        assert abs(reported - achieved) <= 0.25 * achieved + 0.5, (poll, said)
    assert poll.current >= 3.5 * poll.baseline, (poll, said)
    # the probe times the libc call inside the workload's own timing of it, and
    # no lookup can be faster than the server's delay
    slow = find(items, "dns latency", "api.nettrail.test")
    assert slow.detail == "slower", slow
    for reported, window, delay in ((slow.baseline, base, DNS_DELAY_MS["baseline"]),
                                    (slow.current, now, DNS_DELAY_MS["incident"])):
        assert delay <= reported <= window.median_ms("nt-fetch", "lookup:ok") * 1.05 + 1, (
            slow, said)
    assert slow.current >= 5 * slow.baseline, (slow, said)
    # 100 segments a session, one in ten dropped: every session resends (a loaded
    # machine's tail-loss probes may resend a few in the baseline too)
    resent = find(items, "retransmissions", "127.0.0.1:9105")
    assert resent.current >= 0.9 and resent.baseline <= 0.5, (resent, said)


@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (0, 2), (2, 0)])
def test_windows_of_the_same_workload_report_nothing(captures, pair: tuple[int, int]) -> None:
    steady, _ = captures
    changes = compare(steady[pair[0]].profile, steady[pair[1]].profile, "test")
    assert changes.items == [] and changes.checked >= 8, (
        [(c.kind, c.subject, c.metric, c.baseline, c.current) for c in changes.items],
        [str(w) for w in steady])
