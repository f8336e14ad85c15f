"""nettrail schedule / trigger against the real kernel, with a seconds-level
schedule (the hidden --cron-seconds) and a run directory of the test's own."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nettrail.schedule.crontab import crontab_trigger
from nettrail.errors import ExitStatus
from helpers import NETTRAIL, ROOT, nettrail

NEVER = "0 0 1 1 *"  # no scheduled run during a test


class Service:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.root = tmp_path / "root"
        self.env = {**os.environ, "NETTRAIL_RUN_DIR": str(tmp_path / "run")}
        self.proc = subprocess.Popen(
            [*NETTRAIL, "schedule", "--dir", str(self.root), *args],
            cwd=ROOT, env=self.env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.wait_for("running:")

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
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
        _, err = self.proc.communicate(timeout=60)
        self.lines += err.splitlines(keepends=True)
        return self.proc.returncode

    def snapshots(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir())

    def index(self) -> str:
        return (self.root / "index.html").read_text()


@pytest.fixture
def service_factory(tmp_path: Path, bpf: None):
    started: list[Service] = []

    def start(*args: str) -> Service:
        started.append(Service(tmp_path, *args))
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


def test_runs_never_overlap(service_factory) -> None:
    # a 2 s capture scheduled every second: runs would overlap if allowed
    svc = service_factory("--cron", "* * * * *", "--cron-seconds", "*", "1", "2")
    svc.wait_for("written ", count=2)
    svc.wait_for("skipped scheduled capture: the previous capture is still running")
    svc.stop()
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


def test_sigterm_mid_capture_leaves_interrupted_capture(service_factory) -> None:
    svc = service_factory("--cron", NEVER, "1", "30")
    svc.nettrail("trigger", "--no-wait")
    svc.wait_for("started triggered capture")
    time.sleep(2.5)
    started = time.monotonic()
    assert svc.stop() == 0
    assert time.monotonic() - started < 15
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
