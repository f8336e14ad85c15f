"""Root-free tests of the pure logic: units, JSON with and without orjson,
the exception tree (crontab days: test_schedule.py)."""

from __future__ import annotations

import json

import pytest

from nettrail import jsonio
from nettrail.errors import ExitStatus, NettrailError, UsageError
from nettrail.units import human_bytes, human_ms, printable_record

def test_human_units() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536 * 1024, 5 << 30)] == \
        ["0 B", "1023 B", "1.0 KiB", "1.5 MiB", "5.0 GiB"]
    assert [human_ms(x) for x in (0.25, 999.94, 1500)] == ["0.2 ms", "999.9 ms", "1.50 s"]


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "stdlib"])
def test_jsonio_writes_the_same_lines_with_or_without_orjson(
        monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    if not fast:
        monkeypatch.setattr(jsonio, "orjson", None)
    records = [{"name": "é\u202e", "n": 1, "x": 0.5, "none": None}, {"list": [1, 2]}]
    data = jsonio.dump_lines(records)
    assert data == ('{"name":"é\u202e","n":1,"x":0.5,"none":null}\n'
                    '{"list":[1,2]}\n').encode()
    assert [jsonio.loads(line) for line in data.splitlines()] == records
    assert json.loads(jsonio.dumps({"a": [1]}, indent=True)) == {"a": [1]}
    with pytest.raises(ValueError):
        jsonio.loads(b"{bad")


@pytest.mark.parametrize("text", ["plain", "caf\u00e9", "\u202eevil", "a\x1b[2Jb", "del\x7f",
                                  'quote"d', "back\\slash", "line\nbreak", "\udcff"])
def test_printable_lines_are_the_printable_records_lines(text: str) -> None:
    """The check on the encoded lines takes the fast way only where
    printable() would change nothing; either way the lines are the same."""
    records = [{"name": text, "n": 1, "addresses": [text], "nested": {text: [text]}},
               {"kind": "x", "ok": True}]
    assert jsonio.dump_printable_lines(records) == jsonio.dump_lines(
        [printable_record(r) for r in records])


def test_every_error_has_a_distinct_exit_status() -> None:
    statuses = [s.value for s in ExitStatus]
    assert len(statuses) == len(set(statuses))
    assert UsageError("x").status == ExitStatus.USAGE
    assert NettrailError("disk full", "free space").one_line() == "disk full: free space"
