"""Stage 3 of the report: Jinja2 formats what aggregate computed; it decides
nothing. Autoescaping is on for everything; the only raw inserts are our own
CSS and script, which the Content-Security-Policy pins by hash."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from importlib import resources

import jinja2
from markupsafe import Markup

from nettrail.report.aggregate import ReportData
from nettrail.units import human_bytes, human_ms
from nettrail import VERSION

TEMPLATES = resources.files("nettrail.templates")  # package data


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _when(iso: str) -> str:
    return iso.replace("T", " ").replace("Z", " UTC")


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("nettrail", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(human_bytes=human_bytes, human_ms=human_ms, when=_when, clock=_clock,
                       num=lambda n: f"{n:,}", seconds=lambda s: f"{s:g} s")
    return env


def _page(template: str, **context: object) -> str:
    """Render a page with our CSS and script inline, pinned by the CSP."""
    css = (TEMPLATES / "report.css").read_text()
    js = (TEMPLATES / "sort.js").read_text()
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; "
           f"script-src {_csp_hash(js)}; base-uri 'none'; form-action 'none'")
    return _environment().get_template(template).render(
        css=Markup(css), js=Markup(js), csp=Markup(csp), version=VERSION, **context)


def render(data: ReportData, charts: dict[str, bytes], generated_at: str) -> str:
    return _page("report.html.j2", data=data,
                 charts={k: base64.b64encode(v).decode() for k, v in charts.items()},
                 probes={p.name: p.status for p in data.header.probes},
                 generated_at=generated_at)


def render_index(headlines: list, root: str, generated_at: str) -> str:
    """The snapshot index page (report/snapshots.py)."""
    return _page("index.html.j2", headlines=headlines, root=root, generated_at=generated_at)
