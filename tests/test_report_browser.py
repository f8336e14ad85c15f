"""The rendered report in a real browser (Debian's chromium, headless): no
network requests, no console errors, no script from the data, not blank."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from nettrail.report.build import write_report
from test_report import HOSTILE_COMM, copy_capture, hostile_capture

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
    assert page.locator("img").count() == 5
    assert all(page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth > 0)"))
    png = page.screenshot(full_page=True)
    assert len(set(png[1000:20000])) > 50, "screenshot looks blank"
    shot = tmp_path / "shot.png"
    shot.write_bytes(png)
    # the sortable tables sort in the page (the hashed script runs)
    first = lambda: page.locator("#dns tbody tr td").first.inner_text()  # noqa: E731
    page.locator("#dns th", has_text="lookups").first.click()
    assert first() == "api.example.com"
    page.locator("#dns th", has_text="lookups").first.click()
    assert first() != "api.example.com"
    page.close()


def test_hostile_names_show_as_text_and_never_run(browser, tmp_path: Path) -> None:
    report = write_report(hostile_capture(tmp_path))
    seen = open_report(browser, report)
    page = seen["page"]
    assert seen["dialogs"] == [] and seen["errors"] == []
    assert HOSTILE_COMM in page.locator("#bandwidth").inner_text()
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
