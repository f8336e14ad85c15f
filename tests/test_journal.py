"""journald priorities and sd_notify (nettrail/journal.py): a priority per
message only when stderr is the journal stream, readiness datagrams to a
test's own NOTIFY_SOCKET (path and abstract), and the schedule service's
skipped and failed runs at warning and error."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nettrail import journal
from nettrail.capture.window import CaptureOptions
from nettrail.hostlock import capture_lock
from nettrail.schedule.service import Retention, ScheduleService


def journal_stream(monkeypatch: pytest.MonkeyPatch, path: Path):
    """A file that JOURNAL_STREAM names, as systemd names the journal's socket."""
    out = path.open("w")
    st = os.fstat(out.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return out


def test_prefix_only_on_the_journal_stream(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    with journal_stream(monkeypatch, tmp_path / "journal") as out, \
            (tmp_path / "other").open("w") as other:
        assert journal.is_journal(out) and not journal.is_journal(other)
        monkeypatch.setenv("JOURNAL_STREAM", "1:x")
        assert not journal.is_journal(out)
    monkeypatch.delenv("JOURNAL_STREAM")
    assert journal.prefixed("m", journal.ERR, True) == "<3>m"
    assert journal.prefixed("m", journal.ERR, False) == "m"


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_one_datagram(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"nettrail-test-{os.getpid()}"
            sock.bind("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        else:
            sock.bind(str(tmp_path / "notify"))
            monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        sock.settimeout(5)
        assert journal.notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


def test_notify_without_a_manager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not journal.notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not journal.notify("READY=1")


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_skipped_and_failed_runs_are_warnings_and_errors(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, bpf: None) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    with journal_stream(monkeypatch, tmp_path / "journal") as out:
        # no probe asked for: the capture starts and fails ("no probe could start")
        service = ScheduleService(root, CaptureOptions(probes=()), Retention(), None,
                                  lambda d, cancelled, dir_fd: d, log=out)
        assert service.snapshot("scheduled") == "failed"
        with capture_lock():  # another capture holds the host
            assert service.snapshot("scheduled") == "skipped"
    lines = lines_of(tmp_path / "journal")
    assert [line[:3] for line in lines] == ["<6>", "<3>", "<6>", "<4>"], lines
    assert "failed scheduled capture" in lines[1] and "no probe could start" in lines[1]
    assert "skipped scheduled capture: another nettrail capture is running" in lines[3]
    # the runs are in the metrics too: no snapshot numbers, no success yet
    families = {f.name: f for f in text_string_to_metric_families(
        (root / "nettrail.prom").read_text())}
    assert set(families) == {"nettrail_last_run_timestamp_seconds"}
    assert {s.labels["outcome"] for s in families["nettrail_last_run_timestamp_seconds"]
            .samples} == {"failed", "skipped"}
