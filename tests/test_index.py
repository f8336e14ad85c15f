"""The snapshot index, root-free: a trend on a time axis, the top talker and
slowest name per snapshot, failed and unfinished runs listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.schedule.snapshots import update_index
from test_report import V2


def snapshot(root: Path, name: str, started: str, ended: str | None) -> Path:
    directory = root / name
    shutil.copytree(V2, directory)
    meta = json.loads((directory / "meta.json").read_text())
    meta.update(started_at=started, ended_at=ended)
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def test_index_trend_top_talker_and_failed_runs(tmp_path: Path) -> None:
    snapshot(tmp_path, "20260102T030405Z", "2026-01-02T03:04:05.000Z", "2026-01-02T03:04:11.000Z")
    snapshot(tmp_path, "20260102T031905Z", "2026-01-02T03:19:05.000Z", None)
    (tmp_path / "20260102T033405Z").mkdir()  # the run failed before writing anything
    headlines = update_index(tmp_path)
    assert [h.status for h in headlines] == ["failed", "unfinished", "ok"]
    ok = headlines[-1]
    assert (ok.top_talker, ok.slowest, ok.failed_sessions) == ("curl (100)",
                                                               "cache.internal 2.00 s", 5)
    html = (tmp_path / "index.html").read_text()
    assert html.count('<figure class="chart timed"') == 2
    assert "the run failed: no readable capture in <code>20260102T033405Z</code>" in html
    assert "the capture did not finish" in html
    assert "<td class=\"name\">curl (100)</td>" in html
    # the cache is read back as it was written
    assert update_index(tmp_path) == headlines
