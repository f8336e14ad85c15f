"""The snapshot index, root-free: a trend on a time axis, the top talker and
slowest name per snapshot, failed and unfinished runs listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.headline import Headline
from nettrail.schedule.snapshots import _points, failed_headline, update_index
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


def test_interrupted_snapshot_has_its_real_length_and_a_point(tmp_path: Path) -> None:
    # stopped 8.06 s into its first interval of 10 s: intervals_done is 0
    for name, summary_s in (("20260102T030405Z", 8.06), ("20260102T031905Z", None)):
        directory = snapshot(tmp_path, name, f"2026-01-02T03:{name[11:13]}:05.000Z",
                             f"2026-01-02T03:{name[11:13]}:13.060Z")
        meta = json.loads((directory / "meta.json").read_text())
        meta.update(interval_s=10.0, count=6, intervals_done=0, interrupted=True)
        # None: a capture made before elapsed_s (its numbers counted from its logs)
        meta["summary"] = summary_s and Headline(rx_bytes=1000, elapsed_s=summary_s).as_json()
        (directory / "meta.json").write_text(json.dumps(meta))
    headlines = update_index(tmp_path)
    assert [h.seconds for h in headlines] == [8.06, 8.06]
    points = _points(headlines)  # both on the trend chart, at their real rate
    assert len(points) == 2
    assert [p[1]["received"] for p in points] == [8000 / 8.06, 8 * headlines[0].rx_bytes / 8.06]
