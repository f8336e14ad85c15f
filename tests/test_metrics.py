"""The Prometheus textfile (nettrail/metrics.py), root-free: parsed with
prometheus_client's own text parser, numbers checked against the capture's
headline, hostile process names, the atomic write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nettrail.headline import Headline
from nettrail.metrics import (TOP_PROGRAMS, Program, Runs, Snapshot, exposition,
                              write_textfile)
from nettrail.format.meta import parse_time
from nettrail.schedule.snapshots import lost_by_cause, read_snapshot, runs
from nettrail.errors import NettrailError
from helpers import CaptureRun, loopback_session, nettrail
from test_report import V2

PAYLOAD_BYTES = 100_000


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(name, sorted labels) -> value; every series exactly once."""
    found: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in found, f"series twice: {key}"
            found[key] = s.value
    return found


def test_a_capture_as_prometheus_text() -> None:
    _, snapshot = read_snapshot(V2)
    n = snapshot.numbers
    got = samples(exposition(snapshot, Runs(snapshot.ended_s, {"ok": snapshot.started_s})))
    assert got[("nettrail_snapshot_bytes", (("direction", "received"),))] == n.rx_bytes
    assert got[("nettrail_snapshot_bytes", (("direction", "sent"),))] == n.tx_bytes
    assert got[("nettrail_snapshot_bytes_per_second", (("direction", "sent"),))] == (
        n.tx_bytes / 6.0)
    assert got[("nettrail_snapshot_sessions", (("outcome", "failed"),))] == 5
    assert got[("nettrail_snapshot_sessions", (("outcome", "normal"),))] == n.sessions - 5
    assert got[("nettrail_snapshot_lookups", (("outcome", "pending"),))] == n.pending_lookups
    assert got[("nettrail_snapshot_lookups", (("outcome", "failed"),))] == n.failed_lookups
    assert got[("nettrail_snapshot_slowest_lookup_seconds", ())] == n.slowest_ms / 1000
    assert got[("nettrail_snapshot_window_seconds", ())] == 6.0
    assert got[("nettrail_snapshot_lost_events", (("cause", "unknown"), ("probe", "dns")))] == 0
    assert got[("nettrail_last_success_timestamp_seconds", ())] == snapshot.ended_s
    programs = {dict(labels)["program"]: value for (name, labels), value in got.items()
                if name == "nettrail_snapshot_program_bytes"
                and dict(labels)["direction"] == "received"}
    assert programs["curl"] == 1_000_000
    assert "late\\u202eexe" in programs  # a bidi override is shown, never applied
    assert sum(programs.values()) == n.rx_bytes  # no other programs: all are named


HOSTILE = ['a"b', "back\\slash", "new\nline", "\x1b[2Jclear", "x} 1\nfake_metric 9",
           "\\x1b[2Jclear", "\u202eevil", "\udcff", "", "#", "(other)", "p" * 300]


def test_hostile_names_are_bounded_escaped_and_never_a_series_twice() -> None:
    programs = [Program(name, 10 + i, 1) for i, name in enumerate(HOSTILE)]
    programs += [Program(f"filler{i}", 1, 0) for i in range(50)]
    total_rx = sum(p.rx_bytes for p in programs)
    snapshot = Snapshot(Headline(rx_bytes=total_rx, tx_bytes=len(HOSTILE)), 1.0, 2.0, 1.0,
                        False, {"dns": {"map_full": 3}}, {"dns": False}, programs)
    text = exposition(snapshot, Runs())
    got = samples(text)  # parses, and each series once ("\x1b" and its escape merge)
    assert "fake_metric" not in {name for name, _ in got}
    assert all(line.startswith(("#", "nettrail_")) for line in text.splitlines())
    names = {dict(labels)["program"] for (name, labels) in got
             if name == "nettrail_snapshot_program_bytes"}
    assert len(names) == TOP_PROGRAMS
    assert all(len(name) <= 64 and name.isprintable() for name in names)
    named = sum(v for (name, labels), v in got.items()
                if name == "nettrail_snapshot_program_bytes"
                and ("direction", "received") in labels)
    other = got[("nettrail_snapshot_other_programs_bytes", (("direction", "received"),))]
    assert named + other == total_rx
    assert got[("nettrail_snapshot_probe_ok", (("probe", "dns"),))] == 0
    assert ("nettrail_last_success_timestamp_seconds", ()) not in got  # never succeeded


def test_runs_from_the_index() -> None:
    line, _ = read_snapshot(V2)
    got = samples(exposition(None, runs([line])))
    assert got == {("nettrail_last_success_timestamp_seconds", ()): 1767323045.0 + 6.0,
                   ("nettrail_last_run_timestamp_seconds", (("outcome", "ok"),)): 1767323045.0}


def test_the_textfile_is_replaced_atomically_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "nettrail.prom"
    precious = tmp_path / "precious"
    precious.write_text("keep")
    target.symlink_to(precious)  # a planted link is replaced, never followed
    write_textfile(target, "nettrail_x 1\n")
    assert precious.read_text() == "keep"
    assert not target.is_symlink() and target.read_text() == "nettrail_x 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # node_exporter reads it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nettrail.prom", "precious"]
    fifo = tmp_path / "fifo.prom"
    os.mkfifo(fifo)
    with pytest.raises(NettrailError, match="not a regular file"):
        write_textfile(fifo, "nettrail_x 1\n")


def test_metrics_file_must_be_a_prom_file(tmp_path: Path) -> None:
    result = nettrail("capture", "--metrics-file", str(tmp_path / "nettrail.txt"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "does not end in .prom" in result.stderr


def test_capture_writes_its_metrics_file(tmp_path: Path, bpf: None) -> None:
    """A real capture of this process's own loopback session (-p: nobody
    else's traffic): the file's bytes are the session's payload."""
    metrics = tmp_path / "capture.prom"
    run = CaptureRun(tmp_path / "cap", "0.5", "2", "-p", str(os.getpid()),
                     "--metrics-file", str(metrics))
    loopback_session(PAYLOAD_BYTES)
    status, _, err = run.finish()
    assert status == 0, err
    comm = Path("/proc/self/comm").read_text().strip()
    got = samples(metrics.read_text())
    for direction in ("received", "sent"):
        assert got[("nettrail_snapshot_program_bytes",
                    (("direction", direction), ("program", comm)))] == PAYLOAD_BYTES
        assert got[("nettrail_snapshot_bytes", (("direction", direction),))] == PAYLOAD_BYTES
    meta = run.meta()
    # both ends of ours at least (this process may hold others), as the summary counts them
    summary = meta["summary"]
    assert got[("nettrail_snapshot_sessions", (("outcome", "normal"),))] == (
        summary["sessions"] - summary["failed_sessions"]) >= 2
    assert got[("nettrail_last_success_timestamp_seconds", ())] == parse_time(meta["ended_at"])
    for probe in ("bandwidth", "sessions", "dns"):  # each cause counted, nothing lost here
        assert meta["lost_events_by_cause"][probe] == dict.fromkeys(
            ("ringbuf_full", "map_full", "recursion_misses", "pass_rows_cut"), 0)
        assert got[("nettrail_snapshot_lost_events",
                    (("cause", "map_full"), ("probe", probe)))] == 0
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644


def test_metrics_dir_of_another_user_is_refused_before_capturing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("gives a directory to another user: needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    result = nettrail("capture", "0.2", "1", "-o", str(tmp_path / "cap"),
                      "--metrics-file", str(theirs / "nettrail.prom"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "belongs to uid 65534" in result.stderr
    assert not (tmp_path / "cap").exists() and not list(theirs.iterdir())


@pytest.mark.parametrize("by_cause, expected", [
    ({"dns": {"ringbuf_full": 2, "map_full": 0, "recursion_misses": 1}},
     {"ringbuf_full": 2, "map_full": 0, "recursion_misses": 1}),
    (None, {"unknown": 3}),                                     # made before the breakdown
    ({"dns": {"ringbuf_full": 1}}, {"unknown": 3}),             # does not add up
    ({"dns": {"ringbuf_full": True, "map_full": 2}}, {"unknown": 3}),   # not counts
    ({"dns": {"evil\n": 3}}, {"unknown": 3}),                   # no such cause
])
def test_lost_events_by_cause(by_cause: dict | None, expected: dict[str, int]) -> None:
    meta = {"lost_events": {"dns": 3}, **({"lost_events_by_cause": by_cause} if by_cause
                                          else {})}
    assert lost_by_cause(meta) == {"dns": expected}
