"""Stage 3 of the report: Jinja2 formats what aggregate computed and charts
drew; it decides nothing. Autoescaping is on for everything; the only raw
inserts are our own CSS and script, which the Content-Security-Policy pins by
hash. Charts are inline SVG with presentation attributes only (no style
attributes, which the CSP would block)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from importlib import resources

import jinja2
from markupsafe import Markup

from nettrail import VERSION
from nettrail.report.aggregate import ReportData
from nettrail.report.changes import Changes
from nettrail.report.dns import SLOW_LOOKUP_MS
from nettrail.report.findings import Finding
from nettrail.report.snapshot import PER_INTERVAL
from nettrail.report.tally import TABLE_ROWS
from nettrail.report.axes import Chart
from nettrail.units import human_bytes, human_ms, human_rate, many

TEMPLATES = resources.files("nettrail.templates")  # package data


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _when(iso: str) -> str:
    return iso.replace("T", " ").replace("Z", " UTC")


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[
        :-3] + " UTC"


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _environment(tz: dt.tzinfo | None = None) -> jinja2.Environment:
    """Times are shown in `tz` (the report's clock zone; UTC if none)."""
    zone = tz or dt.timezone.utc
    env = jinja2.Environment(loader=jinja2.PackageLoader("nettrail.templates", "."),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        human_bytes=human_bytes, human_ms=human_ms, when=_when, utc=_utc, bits=human_rate,
        clock=lambda ts: dt.datetime.fromtimestamp(ts, zone).strftime("%H:%M:%S.%f")[:-3],
        clock_s=lambda ts: dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S"),
        num=lambda n: f"{n:,}", many=many,
        seconds=lambda s: f"{s:g} s", fmt=format, share=_share,
        percent=lambda share: f"{100 * share:.1f}%")
    return env


def _page(template: str, tz: dt.tzinfo | None = None, **context: object) -> str:
    """Render a page with our CSS and script inline, pinned by the CSP."""
    css = (TEMPLATES / "report.css").read_text()
    js = (TEMPLATES / "page.js").read_text()
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; "
           f"script-src {_csp_hash(js)}; base-uri 'none'; form-action 'none'")
    return _environment(tz).get_template(template).render(
        css=Markup(css), js=Markup(js), csp=Markup(csp), version=VERSION, **context)


def say(finding: Finding) -> str:
    """A finding in the words the page gives it (templates/findings.j2)."""
    return str(_environment().get_template("findings.j2").module.text(finding))  # type: ignore[attr-defined]


def summary_line(data: ReportData) -> str:
    """The page's first line (templates/findings.j2's summary)."""
    return str(_environment().get_template("findings.j2").module.summary(data.summary))  # type: ignore[attr-defined]


def render(data: ReportData, charts: dict[str, Chart | list[Chart] | None],
           generated_at: str, changes: list[Changes] | None = None) -> str:
    """`changes`: the comparison with each capture's baseline, if asked for."""
    return _page("report.html.j2", data.clock.tz, data=data, charts=charts,
                 changes=changes or [],
                 probes=data.probe_status,
                 generated_at=generated_at, rows=TABLE_ROWS, slow_ms=f"{SLOW_LOOKUP_MS:g}",
                 snap_rows=PER_INTERVAL)


def render_index(headlines: list, charts: list[Chart], root: str, generated_at: str,
                 outliers: dict[str, list[str]] | None = None) -> str:
    """The snapshot index page (schedule/snapshots.py); `outliers`: per
    snapshot, its headline numbers far from the snapshots before it."""
    return _page("index.html.j2", headlines=headlines, charts=charts, root=root,
                 generated_at=generated_at, outliers=outliers or {})
