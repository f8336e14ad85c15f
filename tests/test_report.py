"""The report: aggregation with known answers, a gold file, tolerance of bad
logs, escaping of hostile names, atomic private output, samples/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nettrail.report.aggregate import aggregate, percentile
from nettrail.report.build import make_charts, write_report
from nettrail.errors import BadCapture, ExitStatus
from nettrail.report.reader import open_capture
from nettrail.report.render import render
from nettrail import VERSION
from helpers import NETTRAIL, ROOT, nettrail

DATA = Path(__file__).parent / "data"
SMALL = DATA / "capture_small"
GOLD = DATA / "capture_small.gold.html"
HOSTILE_COMM = "<script>alert(1)</script>"
HOSTILE_HOST = "x\"'><img src=x onerror=alert(2)>.example"


def copy_capture(tmp_path: Path, source: Path = SMALL) -> Path:
    target = tmp_path / "capture"
    shutil.copytree(source, target)
    return target


def test_percentile_is_nearest_rank() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 100.0]
    assert percentile(values, 0.5) == 30.0 and percentile(values, 0.95) == 100.0
    assert percentile([7.0], 0.95) == 7.0


def test_bandwidth_totals_timeline_and_hostnames() -> None:
    bw = aggregate(open_capture(SMALL)).bandwidth
    assert (bw.rx_bytes, bw.tx_bytes, bw.rows) == (4060, 9370, 4)
    assert [(p.label, p.rx_bytes, p.tx_bytes, p.connections) for p in bw.processes] == [
        ("backup (300)", 10, 9000, 1), ("curl (100)", 4000, 300, 1), ("sshd (200)", 50, 70, 1)]
    curl = next(c for c in bw.connections if c.process == "curl (100)")
    assert curl.remote == "192.0.2.10:443" and curl.hostnames == ["api.example.com"]
    backup = next(c for c in bw.connections if c.process == "backup (300)")
    assert backup.remote == "[2001:db8::10]:873" and backup.hostnames == ["api.example.com"]
    series = {s.label: (s.rx_bytes, s.tx_bytes) for s in bw.series}
    assert series["curl (100)"] == ([1000, 3000, 0], [100, 200, 0])
    assert bw.intervals == 3


def test_sessions_counts_top_and_endpoints() -> None:
    ss = aggregate(open_capture(SMALL)).sessions
    assert (ss.count, ss.closed, ss.open, ss.before_window) == (5, 4, 1, 1)
    assert (ss.tx_bytes, ss.rx_bytes) == (5312, 10012)
    assert [s.process for s in ss.top[:2]] == ["sshd (200)", "curl (100)"]
    assert ss.top[0].before_window and ss.top[0].duration_ms is None
    assert sorted(ss.durations_ms) == [10.0, 20.0, 30.0, 1500.0]
    top = ss.endpoints[0]
    assert (top.address, top.port, top.sessions) == ("192.0.2.20", 80, 3)


def test_dns_per_host_percentiles_failures_pending() -> None:
    data = aggregate(open_capture(SMALL))
    dns = data.dns
    assert (dns.count, dns.failed, dns.pending) == (7, 1, 1)
    api = next(h for h in dns.hosts if h.host == "api.example.com")
    assert (api.count, api.p50_ms, api.p95_ms, api.max_ms) == (5, 30.0, 100.0, 100.0)
    assert api.processes == ["curl (100)", "wget (101)"]
    assert api.addresses == ["192.0.2.10", "2001:db8::10"]
    assert dns.hosts[0].host == "api.example.com"  # slowest p95 first
    hang = next(h for h in dns.hosts if h.host == "hang.example")
    assert hang.pending == 1 and hang.p95_ms is None
    missing = next(h for h in dns.hosts if h.host == "missing.example")
    assert missing.errors == {"EAI_NONAME": 1}
    texts = [h.text for h in data.highlights]
    assert "backup (300) sent the most: 8.8 KiB (96% of 9.2 KiB)" in texts
    assert any(t.startswith("slowest to resolve: api.example.com: p95 100.0 ms") for t in texts)
    assert "1 lookups failed: missing.example EAI_NONAME ×1" in texts
    assert any(t.startswith("1 lookups unanswered at window end, oldest hang.example")
               for t in texts)


def scrub(html: str) -> str:
    """Charts are matplotlib's business and the version is the release's:
    compare the page around them."""
    html = html.replace(f"nettrail {VERSION}", "nettrail VERSION")
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,CHART", html)


def test_gold_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    data = aggregate(open_capture(SMALL.relative_to(ROOT)))
    html = scrub(render(data, make_charts(data), generated_at="GENERATED"))
    if os.environ.get("UPDATE_GOLD"):
        GOLD.write_text(html)
    assert html == GOLD.read_text(), "rendered HTML changed: review, then UPDATE_GOLD=1"


def test_report_is_self_contained_and_private(tmp_path: Path) -> None:
    out = write_report(copy_capture(tmp_path))
    html = out.read_text()
    assert out.stat().st_mode & 0o077 == 0
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html and "@import" not in html
    assert html.count("data:image/svg+xml;base64,") == 5
    assert not list(out.parent.glob(".*.tmp"))


def test_empty_probes_say_so(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path)
    for name in ("tcptop.jsonl", "tcplife.jsonl", "dns.jsonl"):
        (capture / name).write_text("")
    html = write_report(capture).read_text()
    for text in ("No TCP traffic seen", "No TCP sessions seen", "No lookups seen"):
        assert text in html


def test_bad_lines_and_missing_file_give_warnings(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path)
    with (capture / "tcptop.jsonl").open("a") as f:
        f.write('{"ts":1767323048.0,"interval":3,"pid":3')  # truncated last line
    lines = (capture / "tcplife.jsonl").read_text().splitlines()
    lines[1] = "garbage {"
    lines[2] = lines[2].replace('"tx_bytes":4', '"tx_bytes":"four"')
    (capture / "tcplife.jsonl").write_text("\n".join(lines) + "\n")
    (capture / "dns.jsonl").unlink()
    data = aggregate(open_capture(capture))
    assert data.warnings == ["dns.jsonl is missing: no dns data",
                             "tcptop.jsonl: skipped 1 unreadable line(s): line 5",
                             "tcplife.jsonl: skipped 2 unreadable line(s): line 2, 3"]
    assert data.bandwidth.rows == 4 and data.sessions.count == 3
    html = write_report(capture).read_text()
    assert "tcplife.jsonl: skipped 2 unreadable line(s): line 2, 3" in html


def test_unknown_format_is_one_line_error(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path)
    meta = json.loads((capture / "meta.json").read_text())
    meta["format"] = "nettrail-capture/9"
    (capture / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BadCapture):
        open_capture(capture)
    result = nettrail("report", str(capture))
    assert result.returncode == ExitStatus.BAD_CAPTURE
    assert result.stderr.count("\n") == 1 and "nettrail-capture/9" in result.stderr
    assert not (capture / "report.html").exists()


def test_not_a_capture_is_one_line_error(tmp_path: Path) -> None:
    result = nettrail("report", str(tmp_path))
    assert result.returncode == ExitStatus.BAD_CAPTURE
    assert result.stderr == f"nettrail: {tmp_path} is not a nettrail capture (no meta.json): " \
                            "pass the directory nettrail capture printed\n"


def hostile_capture(tmp_path: Path) -> Path:
    capture = copy_capture(tmp_path)
    for name in ("tcptop.jsonl", "tcplife.jsonl", "dns.jsonl"):
        path = capture / name
        text = path.read_text().replace('"curl"', json.dumps(HOSTILE_COMM))
        path.write_text(text.replace("api.example.com", HOSTILE_HOST.replace('"', '\\"')))
    meta = json.loads((capture / "meta.json").read_text())
    meta["note"] = "<b>bold?</b> & </title><script>alert(3)</script>"
    (capture / "meta.json").write_text(json.dumps(meta))
    return capture


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    html = write_report(hostile_capture(tmp_path)).read_text()
    assert HOSTILE_COMM not in html
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x&#34;&#39;&gt;&lt;img src=x onerror=alert(2)&gt;.example" in html
    assert html.count("<script>") == 1


def test_unreadable_log_is_a_warning(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path)
    (capture / "dns.jsonl").unlink()
    (capture / "dns.jsonl").mkdir()  # exists, cannot be read as a file
    assert "dns.jsonl cannot be read" in aggregate(open_capture(capture)).warnings[0]


def test_samples_render_without_root() -> None:
    samples = [p.parent for p in (ROOT / "samples").glob("*/meta.json")]
    assert samples, "samples/ holds no capture"
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o777)
        for sample in samples:
            readable = copy_capture(Path(shared) / sample.name, sample)
            subprocess.run(["chmod", "-R", "a+rwX", shared], check=True)
            out = readable.parent / "report.html"
            cmd = [*NETTRAIL, "report", str(readable), "-o", str(out)]
            if os.geteuid() == 0:
                cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
            result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "HOME": shared})
            assert result.returncode == 0, result.stderr
            assert "What stands out" in out.read_text()
