"""The "What changed" section in a real browser (headless chromium, as
tests/test_report_browser.py drives it): at the top, every change with both
numbers, offline and clean, the baseline behind the bandwidth charts."""

from __future__ import annotations

from pathlib import Path

from nettrail.report.build import Baseline, write_report
from test_changes import T0, write_capture
from test_report_browser import browser, open_report  # noqa: F401 (the fixture)


def test_what_changed_section_in_the_browser(browser, tmp_path: Path) -> None:  # noqa: F811
    base = write_capture(tmp_path / "base", T0, seed=1)
    now = write_capture(tmp_path / "now", T0 + 86400, seed=2, incident=True)
    report = write_report(now, baselines=[Baseline(base, "chosen by the test")])
    seen = open_report(browser, report)
    page = seen["page"]
    external = [u for u in seen["requests"] if u != report.as_uri() and not u.startswith("data:")]
    assert external == [] and seen["errors"] == []
    section = page.locator("#changes")
    assert section.is_visible()
    # the first section of the page: above "What stands out"
    assert section.bounding_box()["y"] < page.locator("#standout").bounding_box()["y"]
    rows = section.locator("li[data-kind]")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert texts[0].startswith("refused at 192.0.2.40:5432")
    assert all(" then → " in t and t.endswith(" now") for t in texts)
    assert any(t.startswith("lookups of api.example.test slower") for t in texts)
    assert "chosen by the test" in section.inner_text()
    # the baseline is drawn, faintly, behind the received chart
    line = page.locator("#chart-bw-rx path.line.baseline").first
    assert float(line.evaluate("e => getComputedStyle(e).strokeOpacity")) < 0.5
    (tmp_path / "changes.png").write_bytes(page.screenshot(full_page=False))
    page.close()
