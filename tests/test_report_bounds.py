"""The report's cost is bounded whatever the logs hold: a line budget per
log, and a render a stopping service gives up (root-free)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from nettrail.errors import Cancelled
from nettrail.report import reader
from nettrail.report.build import write_report

FIXTURE = Path(__file__).parent / "data" / "capture_v2"


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    target = tmp_path / "capture"
    shutil.copytree(FIXTURE, target)
    target.chmod(0o700)
    return target


def test_lines_past_the_budget_are_not_read_and_say_so(
        capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(reader.LOGS, "dns", dataclasses.replace(reader.LOGS["dns"], line_budget=3))
    opened = reader.open_capture(capture)
    assert len(list(opened.records("dns"))) == 3
    assert opened.warnings == ["dns.jsonl: only its first 3 lines were read (the report's "
                               "cost is bounded)"]


def test_a_cancelled_render_gives_up_and_writes_nothing(capture: Path) -> None:
    with pytest.raises(Cancelled) as raised:
        write_report(capture, cancelled=lambda: True)
    assert raised.value.fix == f"render it later with `nettrail report {capture}`"
    assert not (capture / "report.html").exists()
