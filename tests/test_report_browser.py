"""The rendered report in a real browser (Debian's chromium, headless): no
network requests, no console errors, no script from the data, not blank; one
clock across the charts; filter, sort and links over every row."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from nettrail.report.build import write_report
from test_report import HOSTILE_COMM, V2, copy_capture, hostile_capture

CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (make setup installs it)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()


def open_report(browser, report: Path) -> dict:
    """Load the report; return what the browser saw."""
    page = browser.new_page()
    seen: dict = {"requests": [], "errors": [], "dialogs": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(report.as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    seen["page"] = page
    return seen


def test_report_loads_offline_clean_and_not_blank(browser, tmp_path: Path) -> None:
    report = write_report(copy_capture(tmp_path))
    seen = open_report(browser, report)
    page = seen["page"]
    external = [u for u in seen["requests"] if u != report.as_uri() and not u.startswith("data:")]
    assert external == [] and seen["errors"] == []
    assert page.title() == "nettrail capture on test-host"
    assert page.locator("figure.chart .chartbox svg").count() == 6
    png = page.screenshot(full_page=True)
    assert len(set(png[1000:20000])) > 50, "screenshot looks blank"
    shot = tmp_path / "shot.png"
    shot.write_bytes(png)
    # the sortable tables sort in the page (the hashed script runs)
    first = lambda: page.locator("#t-hostnames tbody tr td").first.inner_text()  # noqa: E731
    page.locator("#t-hostnames th button", has_text="lookups").first.click()
    assert first() == "api.example.com"
    page.locator("#t-hostnames th button", has_text="lookups").first.click()
    assert first() != "api.example.com"
    page.close()


def test_hostile_names_show_as_text_and_never_run(browser, tmp_path: Path) -> None:
    report = write_report(hostile_capture(tmp_path))
    seen = open_report(browser, report)
    page = seen["page"]
    assert seen["dialogs"] == [] and seen["errors"] == []
    assert HOSTILE_COMM in page.locator("#processes").inner_text()
    assert "</title><script>alert(3)</script>" in page.locator(".note").inner_text()
    assert page.locator("img[src=x]").count() == 0
    page.close()


def test_report_fits_a_phone_width(browser, tmp_path: Path) -> None:
    report = write_report(copy_capture(tmp_path))
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(report.as_uri(), wait_until="load")
    # wide tables scroll inside their own box; the page itself does not
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()


def test_one_clock_across_the_charts(browser, tmp_path: Path) -> None:
    """The same clock time is the same pixel column in every time chart, at
    a desktop and at a phone width."""
    report = write_report(copy_capture(tmp_path, V2))
    page = open_report(browser, report)["page"]
    charts = ["#chart-bw-rx", "#chart-bw-tx", "#chart-sessions", "#chart-dns"]
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        ticks = page.eval_on_selector_all("#chart-bw-rx g.xtick", "gs => gs.map(g => g.dataset.t)")
        assert len(ticks) >= 3
        for t in ticks:
            xs = {c: page.locator(f'{c} g.xtick[data-t="{t}"] line').bounding_box()["x"]
                  for c in charts}
            assert max(xs.values()) - min(xs.values()) < 0.5, (t, xs)
        # and the window's end is the plot's right edge in each
        first, last = float(ticks[0]), float(ticks[-1])
        a = page.locator(f'#chart-bw-rx g.xtick[data-t="{ticks[0]}"] line').bounding_box()["x"]
        b = page.locator(f'#chart-dns g.xtick[data-t="{ticks[-1]}"] line').bounding_box()["x"]
        assert b > a and last > first
    page.close()


def test_filter_box_and_what_stands_out_links(browser, tmp_path: Path) -> None:
    report = write_report(copy_capture(tmp_path, V2))
    page = open_report(browser, report)["page"]
    visible = lambda table: page.locator(f"#{table} tbody tr:visible")  # noqa: E731
    assert visible("t-odd").count() == 5
    page.fill('input[data-table="t-groups"]', "cron.service")
    assert visible("t-groups").count() == 2
    assert page.locator('[data-count="t-groups"]').inner_text() == "2 of 7 rows match"
    page.fill('input[data-table="t-groups"]', "")
    assert visible("t-groups").count() == 7
    # "3 connections refused ... rows" fills the sessions table's filter
    page.locator("#standout li", has_text="connections refused").locator("a").click()
    assert page.input_value('input[data-table="t-odd"]') == "refused"
    assert visible("t-odd").count() == 3
    # a hostname links to its connections
    page.locator("#t-hostnames a", has_text="api.example.com").first.click()
    rows = visible("t-groups")
    assert rows.count() == 2 and all("192.0.2.10:443" in t for t in rows.all_inner_texts())
    page.close()


def many_processes(tmp_path: Path, count: int = 60) -> Path:
    """A capture whose processes table has more rows than the page shows at first."""
    capture = copy_capture(tmp_path, V2)
    line = json.loads((capture / "tcptop.jsonl").read_text().splitlines()[0])
    with (capture / "tcptop.jsonl").open("a") as f:
        for n in range(count):
            f.write(json.dumps(line | {"pid": 5000 + n, "comm": f"worker{n}",
                                       "rx_bytes": 1000 + n * 1000, "tx_bytes": 1}) + "\n")
    return capture


def test_sort_reaches_rows_not_shown_at_first(browser, tmp_path: Path) -> None:
    report = write_report(many_processes(tmp_path))
    page = open_report(browser, report)["page"]
    rows = page.locator("#t-processes tbody tr")
    assert rows.count() == 66 and page.locator("#t-processes tbody tr:visible").count() == 25
    smallest = page.locator("#t-processes tbody tr", has_text="worker0 (5000)")
    assert not smallest.is_visible()
    header = page.locator("#t-processes th button", has_text="received")
    header.focus()
    page.keyboard.press("Enter")  # keyboard-reachable: descending first
    page.keyboard.press("Enter")  # then ascending: the smallest first
    received = page.eval_on_selector_all(
        "#t-processes tbody tr", "rows => rows.filter(r => !r.hidden).map(r => +r.cells[1].dataset.v)")
    assert received == sorted(received) and len(received) == 25
    assert smallest.is_visible()  # hidden at first, among the smallest now
    page.locator("button.showall").first.click()
    assert page.locator("#t-processes tbody tr:visible").count() == 66
    page.close()


def test_fleet_report_loads_clean_and_links_conversations(browser, tmp_path: Path) -> None:
    from test_fleet_report import write_fleet
    report = write_report(write_fleet(tmp_path), tmp_path / "fleet.html")
    seen = open_report(browser, report)
    page = seen["page"]
    assert seen["errors"] == [] and page.title() == "nettrail fleet report: 2 hosts"
    assert page.locator("#t-hosts tbody tr").count() == 2
    assert page.locator("#t-conversations tbody tr").count() == 2
    page.locator("#t-conversations a", has_text="db-1:postgres (77)").click()
    assert page.locator('input[data-table="t-groups"]').input_value() == "db-1:postgres (77)"
    visible = page.locator("#t-groups tbody tr:visible")
    assert visible.count() == 4  # one row per remote address (v4-mapped, NAT'd) and side
    assert all(row.startswith("db-1\tdb-1:postgres (77)")
               for row in visible.all_inner_texts())
    page.close()


# -- report v3: the top of the page, and what fits a phone ---------------------------

CLIPPED = """() => [...document.querySelectorAll("figure.chart svg")].flatMap(svg => {
  const box = svg.getBoundingClientRect();
  return [...svg.querySelectorAll("text")].filter(t => t.getClientRects().length && t.textContent)
    .map(t => [t.textContent, t.getBoundingClientRect()])
    .filter(([_, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5
                        || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
    .map(([text]) => svg.closest("figure").id + ": " + text);
})"""
WRAPPED = """() => [...document.querySelectorAll("td.addr")].filter(td => {
  const node = td.firstChild;
  if (!node || node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) return false;
  const range = document.createRange();
  range.selectNodeContents(node);
  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1;
}).map(td => td.firstChild.textContent)"""


@pytest.mark.parametrize("width", [1280, 390])
def test_summary_ranked_findings_and_no_clipped_or_wrapped_text(browser, tmp_path: Path,
                                                                 width: int) -> None:
    report = write_report(copy_capture(tmp_path, V2))
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(report.as_uri(), wait_until="load")
    summary = page.locator("#summary")
    assert summary.is_visible() and summary.inner_text().startswith(
        "Likely cause: 3 connections refused (most: probe → 192.0.2.20:80 ×3)")
    # the summary sits above the findings, the findings above the timeline
    assert summary.bounding_box()["y"] < page.locator("#standout").bounding_box()["y"]
    items = page.locator("#standout li")
    ranks = [int(r) for r in items.evaluate_all("ls => ls.map(l => l.dataset.rank)")]
    kinds = items.evaluate_all("ls => ls.map(l => l.dataset.kind)")
    assert ranks == list(range(1, len(ranks) + 1))
    assert kinds == sorted(kinds, key=["failed", "waiting", "loss", "volume"].index)
    # colour for real problems only: the volume findings are in the text's colour
    colours = items.evaluate_all("ls => ls.map(l => getComputedStyle(l).color)")
    body = page.evaluate("getComputedStyle(document.body).color")
    assert {c for c, k in zip(colours, kinds) if k == "volume"} == {body}
    assert colours[0] != body
    # the hooks are in the footer, not the header
    assert "tp_btf/" not in page.locator("header").inner_text()
    assert "tp_btf/inet_sock_set_state" in page.locator("#captured + ul").inner_text()
    # a UTC host shows its window once
    assert page.locator("header").inner_text().count("03:04:05") == 1
    assert page.evaluate(CLIPPED) == []
    assert page.evaluate(WRAPPED) == []
    for box in page.locator("figure.chart svg").evaluate_all(
            "ss => ss.map(s => s.getBoundingClientRect().right)"):
        assert box <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.close()


def test_twenty_processes_of_a_program_are_one_row(browser, tmp_path: Path) -> None:
    from test_report_v3 import same_program
    report = write_report(same_program(tmp_path))
    page = open_report(browser, report)["page"]
    rows = page.locator("#t-processes tbody tr", has_text="wget")
    assert rows.count() == 1
    pids = rows.locator("ul.pids li")
    assert not pids.first.is_visible()  # one click down
    rows.locator("summary").click()
    assert pids.count() == 20 and pids.first.is_visible()
    page.close()


def test_a_storm_is_the_summary(browser, tmp_path: Path) -> None:
    from test_report_v3 import storm
    report = write_report(storm(tmp_path))
    page = open_report(browser, report)["page"]
    assert page.locator("#summary").inner_text().startswith(
        "Likely cause: connection storm: 3,608 sessions opened in 6 s, 601/s")
    page.locator("#summary a").click()
    assert page.input_value('input[data-table="t-processes"]') == "loader"
    assert page.locator("#t-processes tbody tr:visible").count() == 1
    page.close()


def test_a_duration_bar_shows_the_groups_of_its_sessions(browser, tmp_path: Path) -> None:
    from test_report_rows import slow_peak
    report = write_report(slow_peak(tmp_path))
    page = open_report(browser, report)["page"]
    page.locator("#chart-durations a", has_text="12 sessions of 251.2 ms–398.1 ms").click()
    rows = page.locator("#t-groups tbody tr:visible")
    assert rows.count() == 1 and "slowpoke (810)" in rows.inner_text()
    assert page.locator('[data-count="t-groups"]').inner_text() == (
        "1 of 9 rows match (groups of the 12 sessions of 251.2 ms–398.1 ms)")
    # the box's own text takes over again
    page.fill('input[data-table="t-groups"]', "")
    assert rows.count() == 9
    page.close()
