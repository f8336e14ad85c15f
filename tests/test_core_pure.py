"""Root-free tests of the pure logic: crontab days, units, JSON with and
without orjson, the exception tree and the CLI's help."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from nettrail import jsonio
from nettrail.cli import build_parser
from nettrail.errors import ExitStatus, NettrailError, UsageError
from nettrail.schedule.crontab import crontab_trigger
from nettrail.units import human_bytes, human_ms

MONDAY = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("expression, weekday", [
    ("0 3 * * 1", 0), ("0 3 * * 0", 6), ("0 3 * * 7", 6), ("0 3 * * 5-6", 4),
    ("0 3 * * sat", 5), ("0 3 * * */3", 2),
])
def test_crontab_numeric_days_mean_what_cron_means(expression: str, weekday: int) -> None:
    """Sunday is 0 and 7 (APScheduler 3 alone reads 0 as Monday)."""
    fire = crontab_trigger(expression, utc=True).get_next_fire_time(None, MONDAY)
    assert fire.weekday() == weekday


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "0 3 * * 9"])
def test_crontab_bad_expression_is_usage_error(expression: str) -> None:
    with pytest.raises(UsageError):
        crontab_trigger(expression, utc=True)


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


def test_every_error_has_a_distinct_exit_status() -> None:
    statuses = [s.value for s in ExitStatus]
    assert len(statuses) == len(set(statuses))
    assert UsageError("x").status == ExitStatus.USAGE
    assert NettrailError("disk full", "free space").one_line() == "disk full: free space"


def test_help_ends_with_examples() -> None:
    help_text = build_parser().format_help()
    assert help_text.rstrip().splitlines()[-1].strip().startswith("sudo nettrail trigger")
    assert "examples:" in help_text
