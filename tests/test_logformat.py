"""The format contract, root-free: /1 captures read as /2, the headline numbers."""

from __future__ import annotations

from pathlib import Path

from nettrail.headline import Headline
from nettrail.logformat import DNS_FIELDS, PROBES, SCHEMAS
from nettrail.report.reader import open_capture

V1_CAPTURE = Path(__file__).parent / "data" / "capture_small"


def test_v1_records_are_read_in_the_v2_shape() -> None:
    capture = open_capture(V1_CAPTURE)
    assert capture.meta["format"] == "nettrail-capture/1"
    for probe in PROBES:
        records = list(capture.records(probe))
        assert records, probe
        for r in records:
            assert set(r) == set(SCHEMAS[probe]), probe
            assert r["host"] == capture.meta["host"]
    lookups = list(capture.records("dns"))
    assert set(DNS_FIELDS) >= {"name", "source"}
    assert {r["name"] for r in lookups} == {"api.example.com", "hang.example",
                                            "missing.example"}
    assert {r["source"] for r in lookups} == {"libc"}
    assert capture.warnings == []


def test_headline_counts_and_keeps_one_slowest_name() -> None:
    h = Headline()
    h.add("bandwidth", [{"rx_bytes": 10, "tx_bytes": 3}, {"rx_bytes": 5, "tx_bytes": 0}])
    h.add("sessions", [{"end": "normal"}, {"end": "refused"}, {"end": None}])
    h.add("dns", [
        {"pending": False, "ok": True, "latency_ms": 4.0, "name": "a", "resolved_by": "dns"},
        {"pending": False, "ok": False, "latency_ms": 9.0, "name": "b", "resolved_by": "dns"},
        {"pending": True, "ok": False, "latency_ms": 2.0, "name": "c", "resolved_by": None},
        {"pending": False, "ok": True, "latency_ms": 99.0, "name": "10.0.0.1",
         "resolved_by": "literal"},
    ])
    assert h == Headline(rx_bytes=15, tx_bytes=3, sessions=3, failed_sessions=1, lookups=4,
                         failed_lookups=1, pending_lookups=1, slowest_name="b", slowest_ms=9.0)
    assert Headline.from_json(h.as_json()) == h


def test_headline_from_damaged_summary_is_none() -> None:
    assert Headline.from_json([1]) is None
    assert Headline.from_json({"rx_bytes": "many"}) is None
    assert Headline.from_json({"sessions": True}) is None
    assert Headline.from_json({"slowest_name": 3}) is None
