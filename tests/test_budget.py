"""The capture's per-interval line budget, root-free: past it, sessions are
counted in summary records (capture/budget.py), and the report counts a
summarised session exactly as it counts a line (report/summaries.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import msgspec
import pytest

from nettrail.capture import budget as budget_module
from nettrail.capture.budget import SessionBudget, duration_bucket
from nettrail.capture.logwriter import LogWriter
from nettrail.format import LOGS
from nettrail.format.schema import schema_for
from nettrail.report.aggregate import aggregate
from nettrail.report.reader import open_capture
from nettrail.report.build import make_charts
from nettrail.report.render import render

V2_CAPTURE = Path(__file__).parent / "data" / "capture_v2"
START = 1767323045.0  # capture_v2's window: 3 intervals of 2 s
SUMMARY = LOGS["sessions"].summary
IDENTITY = {"nspid": None, "cgroup": None, "container": None, "unit": None,
            "container_name": None, "pod": None, "pod_namespace": None, "pod_uid": None}


def session(n: int) -> dict:
    """Varied sessions: four processes, both sides, every end, some open,
    some opened before the window, some retransmitting."""
    opened = None if n % 13 == 0 else START + 0.0001 * n
    ts = START + 0.5 + 0.0001 * n
    state = "open" if n % 11 == 0 else "closed"
    return {"kind": "session", "ts": ts, "host": "web-3", "pid": 100 + n % 4,
            "comm": f"p{n % 4}", **IDENTITY, "netns": 4026531840, "family": "ipv4",
            "laddr": "10.0.0.5", "lport": 8080 if n % 2 else 40000 + n % 1000,
            "raddr": f"10.0.0.{n % 3}", "rport": 50000 + n % 1000 if n % 2 else 443,
            "side": "server" if n % 2 else "client", "tx_bytes": n % 700,
            "rx_bytes": n % 300, "retrans_segs": n % 3 if n % 5 == 0 else 0, "srtt_us": 100 + n % 9,
            "opened_at": opened, "duration_ms": None if opened is None else
            (ts - opened) * 1000, "state": state,
            "end": None if state == "open" else ("normal", "reset", "refused", "timeout")[n % 4],
            "connect_us": 50 + n % 30, "syn_retrans_segs": int(n % 7 == 0), "min_rtt_us": 40}


SESSIONS = [session(n) for n in range(3_000)]


def test_a_budget_writes_lines_up_to_it_and_counts_the_rest() -> None:
    budget = SessionBudget(1_000, "web-3")
    kept = budget.admit(SESSIONS[:600]) + budget.admit(SESSIONS[600:1500])
    assert kept == SESSIONS[:1_000] and budget.summarised == 500
    summaries = budget.take(START + 2, 1)
    assert sum(s["sessions"] for s in summaries) == 500
    budget.new_interval()
    assert budget.admit(SESSIONS[1500:]) == SESSIONS[1500:2500]
    later = budget.take(START + 4, 2)
    assert sum(s["sessions"] for s in later) == 500 == budget.summarised - 500
    assert budget.as_json() == {"interval_lines": 1_000, "summarised": 1_000,
                                "summary_lines": len(summaries) + len(later)}
    schema = schema_for("nettrail-capture/2", SUMMARY.file)
    for record in summaries + later:
        assert tuple(record) == SUMMARY.field_names
        jsonschema.validate(record, schema)
        msgspec.json.decode(json.dumps(record), type=SUMMARY.record_type)


def test_a_summary_adds_up_its_sessions() -> None:
    budget = SessionBudget(0, "web-3")
    assert budget.admit(SESSIONS) == []
    summaries = budget.take(START + 6, 3)
    for fields in ("tx_bytes", "rx_bytes", "retrans_segs", "syn_retrans_segs"):
        assert sum(s[fields] for s in summaries) == sum(r[fields] or 0 for r in SESSIONS)
    assert sum(s["retrans_sessions"] for s in summaries) == sum(
        bool(r["retrans_segs"]) for r in SESSIONS)
    assert sum(s["before_window"] for s in summaries) == sum(
        r["opened_at"] is None for r in SESSIONS)
    sketched = sum(sum(s["durations_log2_us"]) for s in summaries)
    assert sketched == sum(r["opened_at"] is not None for r in SESSIONS)
    server = next(s for s in summaries if s["side"] == "server")
    assert server["port"] == 8080 and server["interval"] == 3


def test_durations_fall_in_log2_microsecond_buckets() -> None:
    assert [duration_bucket(ms) for ms in (0.0, 0.0015, 0.002, 0.0039, 0.004, 1.0)] == [
        0, 0, 1, 1, 2, 9]
    assert duration_bucket(1e12) == 49


def test_the_summary_stays_bounded_by_folding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SUMMARY_KEYS distinct records, remotes fold per process; past
    twice that, processes too; every session still counted."""
    monkeypatch.setattr(budget_module, "SUMMARY_KEYS", 4)
    budget = SessionBudget(0, "web-3")
    many = [{**SESSIONS[1], "raddr": f"10.1.0.{n}", "pid": 1000 + n // 8} for n in range(200)]
    budget.admit(many)
    summaries = budget.take(START + 2, 1)
    assert len(summaries) <= 2 * 4 + 1
    assert sum(s["sessions"] for s in summaries) == 200
    assert any(s["raddr"] is None and s["pid"] is not None for s in summaries)
    everyone = [s for s in summaries if s["pid"] is None]
    assert everyone and everyone[0]["comm"] == "" and everyone[0]["host"] == "web-3"


def write_capture(directory: Path, sessions_budget: int | None) -> None:
    """capture_v2's meta with SESSIONS as its sessions log: all as lines, or
    past `sessions_budget` a interval as the capture would write them."""
    writer = LogWriter(directory)
    try:
        budget = SessionBudget(sessions_budget, "web-3") if sessions_budget is not None else None
        for interval, part in enumerate((SESSIONS[:1_000], SESSIONS[1_000:]), 1):
            if budget:
                budget.new_interval()
                part = budget.admit(part)
            writer.write("sessions", part)
            if budget:
                writer.write("sessions", budget.take(START + 2 * interval, interval),
                             summary=True)
        meta = json.loads((V2_CAPTURE / "meta.json").read_text())
        writer.write_meta(meta)
    finally:
        writer.close()


def test_the_report_counts_summarised_sessions_exactly(tmp_path: Path) -> None:
    write_capture(tmp_path / "lines", None)
    write_capture(tmp_path / "budget", 300)
    assert not (tmp_path / "lines" / SUMMARY.file).exists()
    assert len((tmp_path / "budget" / "tcplife.jsonl").read_text().splitlines()) == 600
    every, budgeted = (aggregate([open_capture(tmp_path / name)]) for name in ("lines", "budget"))
    assert budgeted.warnings == every.warnings == []
    assert budgeted.headline == type(every.headline)(**{
        **every.headline.as_json(), "summarised_sessions": 2_400})
    a, b = every.sessions, budgeted.sessions
    assert (b.count, b.summarised) == (3_000, 2_400)
    for name in ("count", "closed", "open", "before_window", "ends", "failed", "retrans",
                 "tx_bytes", "rx_bytes"):
        assert getattr(b, name) == getattr(a, name), name
    assert b.durations.count == a.durations.count
    assert [(bucket.opened, bucket.closed, bucket.failed) for bucket in b.buckets] != []
    assert sum(x.opened for x in b.buckets) == sum(x.opened for x in a.buckets)
    assert sum(x.closed for x in b.buckets) == sum(x.closed for x in a.buckets)
    processes = {(p.process, p.sessions, p.failed_sessions) for p in every.processes}
    assert {(p.process, p.sessions, p.failed_sessions) for p in budgeted.processes} == processes

    def groups(data: object) -> set:
        return {(g.process, g.side, g.remote, g.port, g.sessions, g.open,
                 tuple(sorted(g.ends.items())), g.session_rx_bytes, g.session_tx_bytes,
                 g.retrans_segs, g.retrans_sessions, g.syn_retrans_segs, g.max_srtt_us,
                 g.max_connect_us) for g in data.groups}  # type: ignore[attr-defined]
    assert groups(budgeted) == groups(every)
    page = render(budgeted, make_charts(budgeted), "now")
    assert 'id="summarised">2,400 of these sessions' in page
    assert 'id="summarised"' not in render(every, make_charts(every), "now")


def test_an_older_report_sees_no_summary_and_a_v1_capture_has_none(tmp_path: Path) -> None:
    target = tmp_path / "v1"
    shutil.copytree(Path(__file__).parent / "data" / "capture_small", target)
    target.chmod(0o700)
    (target / SUMMARY.file).write_text("{}\n")
    capture = open_capture(target)
    assert list(capture.blocks("sessions", summary=True)) == []
    assert list(open_capture(V2_CAPTURE).blocks("sessions", summary=True)) == []


def test_a_hostile_summary_is_bounded_and_never_counts_parts_beyond_its_sessions(
        tmp_path: Path) -> None:
    write_capture(tmp_path / "budget", 300)
    hostile = {**json.loads((tmp_path / "budget" / SUMMARY.file).read_text().splitlines()[0]),
               "sessions": 3, "before_window": 10 ** 18, "retrans_sessions": 10 ** 18,
               "first_ts": START + 5, "last_ts": START, "state": "closed",
               "durations_log2_us": [2 ** 62] * 64}
    with (tmp_path / "budget" / SUMMARY.file).open("a") as f:
        f.write(json.dumps(hostile) + "\n")
        f.write(json.dumps({**hostile, "sessions": 0}) + "\n")
    data = aggregate([open_capture(tmp_path / "budget")])
    assert data.warnings == [f"{SUMMARY.file}: skipped 1 unreadable line(s): line "
                             f"{len((tmp_path / 'budget' / SUMMARY.file).read_text().splitlines())}"]
    s = data.sessions
    assert (s.count, s.summarised) == (3_003, 2_403)
    assert s.before_window <= s.count and s.retrans <= s.count
    assert sum(b.opened for b in s.buckets) <= s.count
    render(data, make_charts(data), "now")
