"""The format's descriptions, root-free: /1 captures read as /2, the headline
numbers, and everything derived from the descriptions kept equal to them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.format import LOGS, PROBES, docs
from nettrail.headline import Headline
from nettrail.report.reader import open_capture

ROOT = Path(__file__).resolve().parent.parent
V1_CAPTURE = Path(__file__).parent / "data" / "capture_small"
# written before the fields added within /2 (required=False)
V2_CAPTURE = Path(__file__).parent / "data" / "capture_v2"


# the fixtures were captured before these logs were added
OLDER_PROBES = [probe for probe in PROBES if not LOGS[probe].added_within]


def added_within_v2(probe: str) -> list[str]:
    return [f.name for f in LOGS[probe].fields if not f.required]


def test_v1_records_are_read_in_the_v2_shape() -> None:
    capture = open_capture(V1_CAPTURE)
    assert capture.meta["format"] == "nettrail-capture/1"
    for probe in OLDER_PROBES:
        records = list(capture.records(probe))
        assert records, probe
        for r in records:
            assert tuple(r.as_dict()) == LOGS[probe].field_names, probe
            assert r["host"] == capture.meta["host"]
    lookups = list(capture.records("dns"))
    assert {r.name for r in lookups} == {"api.example.com", "hang.example", "missing.example"}
    assert {r.source for r in lookups} == {"libc"}
    assert capture.warnings == []


def test_v2_lines_older_than_the_fields_added_within_v2_read_them_as_null() -> None:
    capture = open_capture(V2_CAPTURE)
    assert added_within_v2("bandwidth") and added_within_v2("sessions")
    for probe in OLDER_PROBES:
        records = list(capture.records(probe))
        assert records, probe
        for r in records:
            assert tuple(r.as_dict()) == LOGS[probe].field_names, probe
            assert all(r[name] is None for name in added_within_v2(probe)), probe
    assert capture.warnings == []


def test_a_field_added_within_v2_is_checked_where_present(tmp_path: Path) -> None:
    target = tmp_path / "capture"
    shutil.copytree(V2_CAPTURE, target)
    target.chmod(0o700)
    log = target / LOGS["bandwidth"].file
    lines = log.read_text().splitlines()
    added = {f.name: 7 for f in LOGS["bandwidth"].fields if not f.required and f.type is int}
    lines[0] = json.dumps({**json.loads(lines[0]), **added, "rwnd_limited_us": -1})
    lines[1] = json.dumps({**json.loads(lines[1]), **added})
    log.write_text("\n".join(lines) + "\n")
    capture = open_capture(target)
    records = list(capture.records("bandwidth"))
    assert len(records) == len(lines) - 1 and records[0]["busy_us"] == 7
    assert len(capture.warnings) == 1 and "line 1" in capture.warnings[0]


def test_headline_counts_and_keeps_one_slowest_name() -> None:
    h = Headline()
    h.add("bandwidth", [{"rx_bytes": 10, "tx_bytes": 3}, {"rx_bytes": 5, "tx_bytes": 0}])
    # a reset seen at both ends of a loopback connection is one failed session
    loopback = {"end": "reset", "raddr": "127.0.0.1"}
    h.add("sessions", [{"end": "normal"}, {"end": "refused", "side": "client",
                                           "raddr": "192.0.2.1"}, {"end": None},
                       {**loopback, "side": "client"}, {**loopback, "side": "server"}])
    lookup = {"call_ts": None, "resolved_by": "dns", "pending": False, "ok": True}
    h.add("dns", [
        {**lookup, "latency_ms": 4.0, "name": "a"},
        {**lookup, "ok": False, "latency_ms": 9.0, "name": "b"},
        {**lookup, "pending": True, "ok": False, "latency_ms": 20.0, "name": "c",
         "resolved_by": None},
        {**lookup, "latency_ms": 99.0, "name": "10.0.0.1", "resolved_by": None},
        {**lookup, "latency_ms": 0.1, "name": "localhost", "resolved_by": "hosts"},
        {**lookup, "latency_ms": 30.0, "name": "a", "call_ts": 1.5},  # a's query: not a lookup
    ])
    assert h == Headline(rx_bytes=15, tx_bytes=3, sessions=5, failed_sessions=2, lookups=3,
                         failed_lookups=1, pending_lookups=1, literal_lookups=1,
                         hosts_lookups=1, slowest_name="b", slowest_ms=9.0)
    assert Headline.from_json(h.as_json()) == h


def test_headline_reads_summaries_written_before_fields_were_added() -> None:
    old = Headline(lookups=4).as_json()
    del old["literal_lookups"], old["hosts_lookups"]
    assert Headline.from_json(old) == Headline(lookups=4)


def test_headline_from_damaged_summary_is_none() -> None:
    assert Headline.from_json([1]) is None
    assert Headline.from_json({"rx_bytes": "many"}) is None
    assert Headline.from_json({"sessions": True}) is None
    assert Headline.from_json({"slowest_name": 3}) is None


def test_format_md_tables_are_the_descriptions() -> None:
    path = ROOT / "docs" / "format.md"
    text = path.read_text()
    assert text.count("<!-- fields: ") == len(docs.tables())
    assert docs.rewrite(text) == text, (
        "docs/format.md is out of date: run `python -P -m nettrail.format.docs docs/format.md`")


def test_every_field_is_documented_and_named_with_its_unit() -> None:
    for log in LOGS.values():
        for f in log.fields:
            assert f.doc, f"{log.probe}.{f.name}"
            if f.type in (int, float) and f.name not in ("ts", "pid", "nspid", "netns",
                                                         "lport", "rport", "sport", "dport", "interval",
                                                         "opened_at", "call_ts", "first_ts", "last_ts",
                                                         "ino",
                                                         "resolv_conf"):
                assert f.unit, f"{log.probe}.{f.name} has no unit in its name"
