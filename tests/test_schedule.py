"""nettrail schedule / trigger against the real kernel, with a seconds-level
schedule (the hidden --cron-seconds) and a run directory of the test's own."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nettrail.schedule.crontab import crontab_trigger
from nettrail.errors import ExitStatus
from nettrail.hostlock import capture_lock
from helpers import NETTRAIL, ROOT, intervals_done, nettrail

NEVER = "0 0 1 1 *"  # no scheduled run during a test


class Service:
    """The service with its stderr a pipe; `journal`: that pipe is named by
    JOURNAL_STREAM, as systemd names the journal's stream socket."""

    def __init__(self, tmp_path: Path, *args: str, journal: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.root = tmp_path / "root"
        self.env = {**os.environ, "NETTRAIL_RUN_DIR": str(tmp_path / "run")}
        read_end, write_end = os.pipe()
        st = os.fstat(write_end)
        self.proc = subprocess.Popen(
            [*NETTRAIL, "schedule", "--dir", str(self.root), *args], cwd=ROOT,
            env={**self.env, **(env or {}), **({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
                                                if journal else {})}, stderr=write_end)
        os.close(write_end)
        self.proc.stderr = open(read_end, encoding="utf-8", errors="replace")
        self.lines: list[str] = []
        self.wait_for("running:")

    def wait_for(self, text: str, count: int = 1, timeout: float = 300) -> None:
        # generous: a capture takes ~20 s to load its probes under qemu TCG
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < count:
            assert time.monotonic() < deadline, f"no {text!r} in: {self.lines}"
            line = self.proc.stderr.readline()
            assert line, f"service exited: {self.lines}"
            self.lines.append(line)

    def nettrail(self, *args: str) -> subprocess.CompletedProcess:
        return nettrail(*args, env=self.env)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.lines += self.proc.stderr.readlines()
        self.proc.stderr.close()
        return self.proc.returncode

    def snapshots(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir())

    def index(self) -> str:
        return (self.root / "index.html").read_text()


@pytest.fixture
def service_factory(tmp_path: Path, bpf: None):
    started: list[Service] = []

    def start(*args: str, **kwargs) -> Service:
        started.append(Service(tmp_path, *args, **kwargs))
        return started[-1]

    yield start
    for svc in started:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()


def test_snapshots_retention_and_index(service_factory) -> None:
    svc = service_factory("--cron", "* * * * *", "--cron-seconds", "*/3", "0.5", "2",
                          "--keep", "2")
    svc.wait_for("written ", count=3)
    svc.wait_for("pruned ", count=1)
    assert svc.stop() == 0
    kept = svc.snapshots()
    assert len(kept) == 2
    index = svc.index()
    for snapshot in kept:
        assert (snapshot / "report.html").exists()
        assert f'href="{snapshot.name}/report.html"' in index
        assert json.loads((snapshot / "meta.json").read_text())["trigger"] == "scheduled"
    assert index.index(kept[1].name) < index.index(kept[0].name)  # newest first
    assert "Content-Security-Policy" in index
    # the textfile after the last run: the newest snapshot's numbers, as its meta says
    metrics = gauges((svc.root / "nettrail.prom").read_text())
    meta = json.loads((kept[1] / "meta.json").read_text())
    assert metrics["nettrail_snapshot_bytes", "received"] == meta["summary"]["rx_bytes"]
    assert metrics["nettrail_snapshot_window_seconds", None] == 1.0
    # the newest snapshot's success: its start plus its window, as its meta says
    started = dt.datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00")).timestamp()
    assert metrics["nettrail_last_success_timestamp_seconds", None] == pytest.approx(
        started + meta["interval_s"] * meta["count"], abs=1e-6)


def gauges(text: str) -> dict[tuple[str, str | None], float]:
    """Prometheus text parsed by prometheus_client: (name, its one label's value)."""
    return {(s.name, next(iter(s.labels.values()), None)): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_readiness_and_priorities_for_systemd(service_factory, tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    with notify:
        svc = service_factory("--cron", NEVER, "0.5", "1", journal=True,
                              env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert notify.recv(4096).split(b"\n")[0] == b"READY=1"  # once it takes triggers
        assert svc.nettrail("trigger").returncode == 0
        svc.wait_for("written ")
        assert svc.stop() == 0
        assert notify.recv(4096) == b"STOPPING=1"
    assert svc.lines[0].startswith("<5>nettrail schedule: running:")
    assert any(line.startswith("<6>nettrail schedule: written ") for line in svc.lines)
    assert not [line for line in svc.lines if not line.startswith(("<5>", "<6>"))]


def test_once_for_a_timer(tmp_path: Path, bpf: None) -> None:
    root, metrics = tmp_path / "root", tmp_path / "metrics.prom"
    once = ["schedule", "--once", "--dir", str(root), "0.3", "1", "--keep", "1",
            "--metrics-file", str(metrics)]
    first = nettrail(*once)
    assert first.returncode == 0, first.stderr
    (kept,) = [p for p in root.iterdir() if p.is_dir()]
    with capture_lock():  # another capture holds the host: skipped, exit 7
        busy = nettrail(*once)
    assert busy.returncode == ExitStatus.BUSY
    assert "skipped scheduled capture: another nettrail capture is running" in busy.stderr
    assert {outcome for name, outcome in gauges(metrics.read_text())
            if name == "nettrail_last_run_timestamp_seconds"} == {"ok", "skipped"}
    second = nettrail(*once)
    assert second.returncode == 0, second.stderr
    assert f"pruned {kept}" in second.stderr  # retention after the run
    (newest,) = [p for p in root.iterdir() if p.is_dir()]
    assert json.loads((newest / "meta.json").read_text())["trigger"] == "scheduled"
    assert f'href="{newest.name}/report.html"' in (root / "index.html").read_text()
    assert gauges(metrics.read_text())["nettrail_snapshot_window_seconds", None] == 0.3


@pytest.mark.parametrize("args", [[], ["--once", "--cron", NEVER]])
def test_once_or_cron(tmp_path: Path, args: list[str]) -> None:
    result = nettrail("schedule", *args, "--dir", str(tmp_path / "root"))
    assert result.returncode == ExitStatus.USAGE and result.stderr.count("\n") == 1
    assert "either --cron EXPR or --once" in result.stderr
    assert not (tmp_path / "root").exists()


def test_runs_never_overlap(service_factory) -> None:
    # a 2 s capture scheduled every second: runs would overlap if allowed
    svc = service_factory("--cron", "* * * * *", "--cron-seconds", "*", "1", "2")
    svc.wait_for("written ", count=2)
    svc.wait_for("skipped scheduled capture: the previous capture is still running")
    svc.stop()
    assert not [line for line in svc.lines if "Error notifying listener" in line]
    assert "a scheduled run was skipped: the previous capture is still running" in svc.index()
    spans = []
    for snapshot in svc.snapshots():
        meta = json.loads((snapshot / "meta.json").read_text())
        spans.append((meta["started_at"], meta["ended_at"]))
    spans.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


def test_capture_refused_while_service_captures(service_factory, tmp_path: Path) -> None:
    svc = service_factory("--cron", NEVER, "1", "5")
    assert svc.nettrail("trigger", "--no-wait").returncode == 0
    svc.wait_for("started triggered capture")
    result = svc.nettrail("capture", "1", "1", "-o", str(tmp_path / "other"))
    assert result.returncode == ExitStatus.BUSY
    assert "another nettrail capture is running" in result.stderr
    assert result.stderr.count("\n") == 1
    assert svc.stop() == 0


def test_trigger_makes_a_triggered_snapshot(service_factory) -> None:
    svc = service_factory("--cron", NEVER, "0.5", "1")
    result = svc.nettrail("trigger")
    assert result.returncode == 0 and "capture now" in result.stdout
    svc.wait_for("written ")
    assert svc.stop() == 0
    (snapshot,) = svc.snapshots()
    assert json.loads((snapshot / "meta.json").read_text())["trigger"] == "triggered"
    assert "<td>triggered</td>" in svc.index()


def wait_for_interval(svc: Service, timeout_s: float = 300) -> None:
    """Until the running snapshot's meta.json says an interval was written
    (the window checkpoints it after each)."""
    deadline = time.monotonic() + timeout_s
    while not any(intervals_done(snapshot) for snapshot in svc.snapshots()):
        assert time.monotonic() < deadline, f"no interval written: {svc.lines}"
        time.sleep(0.1)


def test_sigterm_mid_capture_leaves_interrupted_capture(service_factory) -> None:
    svc = service_factory("--cron", NEVER, "1", "30")
    svc.nettrail("trigger", "--no-wait")
    svc.wait_for("started triggered capture")
    wait_for_interval(svc)
    started = time.monotonic()
    assert svc.stop() == 0
    # the unit's TimeoutStopSec: the window's wind-down plus a render given up
    # at RENDER_GRACE_S (a TCG VM's render of one interval took 15.6 s in all)
    assert time.monotonic() - started < 30
    (snapshot,) = svc.snapshots()
    meta = json.loads((snapshot / "meta.json").read_text())
    assert meta["interrupted"] is True and meta["ended_at"] and meta["intervals_done"] >= 1
    assert (snapshot / "report.html").exists()
    assert any("interrupted" in line for line in svc.lines)


def test_trigger_without_service(tmp_path: Path) -> None:
    result = nettrail("trigger", env={**os.environ, "NETTRAIL_RUN_DIR": str(tmp_path)})
    assert result.returncode == ExitStatus.NOT_RUNNING
    assert result.stderr.count("\n") == 1 and "no nettrail schedule service" in result.stderr


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "0 3 * * 9"])
def test_bad_cron_is_usage_error_before_anything(tmp_path: Path, expr: str) -> None:
    result = nettrail("schedule", "--cron", expr, "--dir", str(tmp_path / "root"),
                      env={**os.environ, "NETTRAIL_RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr.count("\n") == 1 and "crontab expression" in result.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("expr, weekday", [("0 3 * * 1", "Monday"), ("0 3 * * 0", "Sunday"),
                                           ("0 3 * * 7", "Sunday"), ("0 3 * * fri", "Friday")])
def test_crontab_days_of_week_mean_what_cron_means(expr: str, weekday: str) -> None:
    after = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)  # a Tuesday
    fire = crontab_trigger(expr, utc=True).get_next_fire_time(None, after)
    assert fire.strftime("%A") == weekday
