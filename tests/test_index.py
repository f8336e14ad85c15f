"""The snapshot index, root-free: a trend on a time axis, the top talker and
slowest name per snapshot, failed and unfinished runs listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.schedule.snapshots import failed_headline, update_index
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
    # a run that failed before writing anything leaves a directory that is no
    # snapshot: the service's note is what lists it (a foreign one is ignored)
    (tmp_path / "20260102T033405Z").mkdir()
    (tmp_path / "20260102T034905Z").mkdir()
    update_index(tmp_path, failed_headline(tmp_path / "20260102T033405Z", "failed",
                                           "scheduled", "no probe could start"))
    headlines = update_index(tmp_path, failed_headline(
        tmp_path / "20260102T033500Z", "skipped", "scheduled",
        "the previous capture is still running"))
    assert [h.status for h in headlines] == ["skipped", "failed", "unfinished", "ok"]
    ok = headlines[-1]
    assert (ok.top_talker, ok.slowest, ok.failed_sessions) == ("curl (100)",
                                                               "db.internal 180.0 ms", 5)
    html = (tmp_path / "index.html").read_text()
    assert html.count('<figure class="chart timed"') == 2
    assert "the run failed: no probe could start" in html
    assert "a scheduled run was skipped: the previous capture is still running" in html
    assert "20260102T034905Z" not in html
    assert "the capture did not finish" in html
    assert "<td class=\"name\">curl (100)</td>" in html
    # the cache is read back as it was written
    assert update_index(tmp_path) == headlines
