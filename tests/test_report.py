"""The report: aggregation with known answers (a /1 capture read through the
upgrade path, a hand-written /2 capture with every field), bounded memory,
gold files, tolerance of bad logs, escaping of hostile names, atomic private
output, samples/."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nettrail import VERSION
from nettrail.errors import BadCapture, ExitStatus
from nettrail.format import LOGS
from nettrail.headline import Headline
from nettrail.report.aggregate import aggregate
from nettrail.report.bounded import HeavyHitters, LogSketch
from nettrail.report.build import make_charts, write_report
from nettrail.report.axes import bit_unit, nice_step, value_ticks
from nettrail.report.clock import Clock
from nettrail.report.dns import aggregate_dns
from nettrail.report.header import probe_notes
from nettrail.report.labels import percentile
from nettrail.report.names import Resolutions
from nettrail.report.reader import open_capture
from nettrail.report.ranking import KINDS
from nettrail.report.render import render, say, summary_line
from nettrail.report.tally import TABLE_ROWS, Tally
from helpers import NETTRAIL, ROOT, nettrail

DATA = Path(__file__).parent / "data"
SMALL = DATA / "capture_small"
V2 = DATA / "capture_v2"
HOSTILE_COMM = "<script>alert(1)</script>"
HOSTILE_HOST = "x\"'><img src=x onerror=alert(2)>.example"


def copy_capture(tmp_path: Path, source: Path = SMALL) -> Path:
    target = tmp_path / "capture"
    shutil.copytree(source, target)
    return target


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports show the renderer's local zone: pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- bounded summaries -------------------------------------------------------------

def test_percentile_is_nearest_rank() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 100.0]
    assert percentile(values, 0.5) == 30.0 and percentile(values, 0.95) == 100.0
    assert percentile([7.0], 0.95) == 7.0


def test_sketch_is_exact_when_small_and_within_one_percent_beyond() -> None:
    small = LogSketch()
    for v in (10.0, 20.0, 30.0, 40.0, 100.0):
        small.add(v)
    assert (small.quantile(0.5), small.quantile(0.95), small.max) == (30.0, 100.0, 100.0)
    rng = random.Random(7)
    values = [rng.lognormvariate(2, 2) for _ in range(20_000)]
    big = LogSketch()
    for v in values:
        big.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = percentile(values, q)
        assert abs(big.quantile(q) - exact) <= 0.01 * exact
    assert len(big.buckets) < 2_000 and big.values is None


def test_heavy_hitters_keep_the_heavy_and_bound_the_rest() -> None:
    class Stats:
        weight = error = 0.0
    table: HeavyHitters[Stats] = HeavyHitters(100, Stats)
    truth: dict[int, int] = {}
    rng = random.Random(3)
    for n in range(50_000):
        key = n if n % 2 else rng.randrange(10)  # 10 heavy keys among 25,000 light ones
        truth[key] = truth.get(key, 0) + 1
        table.get(key).weight += 1
    assert len(table) <= 200 and not table.exact
    for key in range(10):
        stats = table.items[key]
        assert stats.weight - stats.error <= truth[key] <= stats.weight
    assert all(truth[k] <= table.floor for k in truth if k not in table.items)


def test_nice_ticks_in_the_unit_shown() -> None:
    assert nice_step(0.3) == 0.5 and nice_step(2.4) == 2.5 and nice_step(7) == 10
    top, ticks = value_ticks(15.9e6, bit_unit)
    assert top == 20e6 and [label for _, label in ticks] == [
        "0 Mbit/s", "5 Mbit/s", "10 Mbit/s", "15 Mbit/s", "20 Mbit/s"]


def test_lookup_flood_stays_bounded() -> None:
    """A million-name flood would make every name a row: the report keeps the
    most looked-up names and says the rest were left out."""
    clock = Clock(1000.0, 1060.0, dt.timezone.utc, 1.0)
    resolutions = Resolutions()
    tally = Tally(clock, resolutions.names_of, {})
    lookup = LOGS["dns"].record_type
    flood = [lookup(kind="lookup", ts=1000.0 + n / 5000, host="h", pid=66 + n % 7,
                    comm="flood", nspid=None, cgroup=None, container=None, unit=None,
                    source="libc", name=f"n{n}.example" if n % 10 else "hot.example",
                    name_truncated=False, qtype=None, function="getaddrinfo", server=None,
                    latency_ms=1.0 + n % 50, ok=n % 3 > 0,
                    error=None if n % 3 else "EAI_NONAME", addresses=[f"10.9.{n % 250}.1"],
                    pending=False, resolved_by="dns", call_ts=None) for n in range(60_000)]
    headline = Headline()
    dns = aggregate_dns([(None, headline, [flood])], tally, resolutions)
    assert dns.count == headline.lookups == 60_000 and dns.failed == 20_000
    assert not dns.hosts_exact and len(dns.hosts) <= TABLE_ROWS
    hot = next(h for h in dns.hosts if h.name == "hot.example")
    assert hot.count == 6_000 and not hot.approximate
    assert len(dns.problems) == TABLE_ROWS and dns.problem_count == 20_000


# -- a /1 capture, upgraded as it is read ------------------------------------------

def test_v1_bandwidth_processes_and_rates() -> None:
    data = aggregate([open_capture(SMALL)])
    bw = data.bandwidth
    assert (bw.rx_bytes, bw.tx_bytes, bw.rows) == (4060, 9370, 4)
    assert [(iv.end, iv.seconds) for iv in bw.intervals] == [
        (1767323046.0, 1.0), (1767323047.0, 1.0), (1767323048.0, 1.0)]
    series = {s.label: (s.rx_bytes, s.tx_bytes) for s in bw.series}
    assert series["curl (100)"] == ([1000, 3000, 0], [100, 200, 0])
    rows = {p.process: p for p in data.processes}
    assert (rows["backup (300)"].tx_bytes, rows["backup (300)"].peak_bps) == (9000, 72080.0)
    assert rows["backup (300)"].new and not rows["curl (100)"].new
    assert rows["curl (100)"].lookups == 4 and rows["probe (400)"].sessions == 3


def test_v1_sides_are_guessed_and_named_by_the_same_process() -> None:
    data = aggregate([open_capture(SMALL)])
    groups = {(g.process, g.remote): g for g in data.groups}
    curl = groups[("curl (100)", "192.0.2.10:443")]
    assert (curl.side, curl.guessed, curl.port) == ("client", True, 443)
    assert curl.hostnames == ["api.example.com"]
    sshd = groups[("sshd (200)", "198.51.100.7")]
    assert (sshd.side, sshd.port, sshd.sessions, sshd.open) == ("server", 22, 1, 1)
    backup = groups[("backup (300)", "[2001:db8::10]:873")]
    assert backup.hostnames == []  # curl resolved that address, not backup
    probe = groups[("probe (400)", "192.0.2.20:80")]
    assert (probe.sessions, probe.failed) == (3, 0)
    assert any("guessed from port numbers" in n for n in data.notes)


def test_v1_dns_per_name_failures_pending() -> None:
    data = aggregate([open_capture(SMALL)])
    dns = data.dns
    assert (dns.count, dns.failed, dns.pending, dns.slow) == (7, 1, 1, 1)
    api = next(h for h in dns.hosts if h.name == "api.example.com")
    assert (api.count, api.p50_ms, api.p95_ms, api.max_ms) == (5, 30.0, 100.0, 100.0)
    assert api.processes == ["curl (100)", "wget (101)"]
    assert api.addresses == ["192.0.2.10", "2001:db8::10"]
    missing = next(h for h in dns.hosts if h.name == "missing.example")
    assert missing.errors == {"EAI_NONAME": 1}
    texts = [say(f) for f in data.findings]
    assert "1 lookup failed: missing.example EAI_NONAME ×1" in texts
    assert any(t.startswith("1 lookup unanswered at window end, oldest hang.example")
               for t in texts)


# -- a /2 capture with every field -------------------------------------------------

def test_v2_sides_ends_and_services() -> None:
    data = aggregate([open_capture(V2)])
    groups = {(g.process, g.remote): g for g in data.groups}
    nginx = groups[("nginx (700)", "2001:db8::77")]
    assert (nginx.side, nginx.guessed, nginx.port, nginx.group) == (
        "server", False, 443, "nginx.service")
    assert (nginx.ends, nginx.failed, nginx.retrans_segs, nginx.retrans_sessions,
            nginx.max_srtt_us) == ({"reset": 1}, 1, 12, 1, 150_000)
    probe = groups[("probe (400)", "192.0.2.20:80")]
    assert (probe.sessions, probe.ends) == (3, {"refused": 3})
    app = groups[("app (900)", "192.0.2.30:5432")]
    assert app.group == "container 3f2a9c1e5b7d" and app.hostnames == ["db.internal"]
    assert groups[("sshd (200)", "198.51.100.7")].guessed  # side null in the log
    ss = data.sessions
    assert (ss.count, ss.failed, ss.retrans, ss.high_rtt, ss.before_window) == (9, 5, 2, 1, 1)
    assert [s.problems for s in ss.odd if s.process == "nginx (700)"] == [
        ["reset", "retransmissions", "high RTT"]]


def test_v2_names_come_from_the_same_process_before_connecting() -> None:
    groups = {(g.process, g.remote): g for g in aggregate([open_capture(V2)]).groups}
    # probe resolved other-name.example to curl's server too: not curl's name for it
    assert groups[("curl (100)", "192.0.2.10:443")].hostnames == ["api.example.com"]
    assert groups[("late\\u202eexe (950)", "192.0.2.10:443")].hostnames == ["api.example.com"]


def test_v2_one_view_of_a_lookup() -> None:
    dns = aggregate([open_capture(V2)]).dns
    # curl's call and its A/AAAA queries are one lookup; probe's call and its two
    # NXDOMAIN queries (with and without the search suffix) are one; the
    # container's resolver speaks DNS itself: wire-only lookups of their own
    assert dns.wire_linked == 4
    assert (dns.count, dns.literal, dns.from_hosts) == (7, 1, 1)
    missing = next(lk for lk in dns.problems if lk.name == "missing")
    assert (missing.error, missing.wire) == ("EAI_NONAME", [
        "A 10.0.0.2:53 NXDOMAIN 10.0 ms", "A 10.0.0.2:53 NXDOMAIN 11.0 ms"])
    names = {h.name: h for h in dns.hosts}
    assert "192.0.2.20" not in names and "localhost" not in names
    assert names["db.internal"].sources == ["wire"] and names["db.internal"].slow == 1
    assert names["cache.internal"].pending == 1


def test_v2_what_stands_out_links_to_rows() -> None:
    data = aggregate([open_capture(V2)])
    found = {say(f): ("t-" + f.table, f.filter) for f in data.findings if f.table}
    assert found["top talker by bytes: curl (100): 976.6 KiB in, 2.9 KiB out (55% of the bytes seen: 1.7 MiB "
                 "on the network); with 192.0.2.10:443 979.5 KiB"] == ("t-processes", "curl")
    assert found["3 connections refused (most: probe → 192.0.2.20:80 ×3)"] == (
        "t-odd", "refused")
    assert found["1 connection timed out (most: probe → 192.0.2.21:80 ×1)"] == (
        "t-odd", "timeout")
    # the server is named as the server, its client first
    assert found["1 connection reset (most: 2001:db8::77 → the server nginx port 443 ×1)"
                 ] == ("t-odd", "reset")
    assert found["2 sessions retransmitted segments"] == ("t-odd", "retransmissions")
    assert found["2 programs first seen mid-window (no traffic or session of theirs before): "
                 "app, late\\u202eexe"] == ("t-processes", "new")
    assert any(t.startswith("top talker by rate: curl: 3.01 Mbit/s") for t in found)


def test_findings_are_ranked_failed_waiting_loss_volume() -> None:
    data = aggregate([open_capture(V2)])
    kinds = [f.kind for f in data.findings]
    assert kinds == sorted(kinds, key=KINDS.index) and [f.rank for f in data.findings] == list(
        range(1, len(kinds) + 1))
    assert set(kinds) == set(KINDS)
    # colour (warn) only for failures and waits here; loss and volume are not coloured
    assert {f.kind for f in data.findings if f.severity == "warn"} == {"failed", "waiting"}
    assert data.summary.cause is data.findings[0]
    assert summary_line(data) == ("Likely cause: 3 connections refused (most: probe → "
                                  "192.0.2.20:80 ×3)")


def test_bursts_have_a_clock_time(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path, V2)
    line = json.loads((capture / "tcplife.jsonl").read_text().splitlines()[1])
    with (capture / "tcplife.jsonl").open("a") as f:
        for n in range(60):
            f.write(json.dumps(line | {"lport": 42000 + n, "opened_at": 1767323048.2,
                                       "ts": 1767323048.25, "end": "normal"}) + "\n")
    (burst,) = aggregate([open_capture(capture)]).sessions.bursts
    assert (burst.ts, burst.opened, burst.by) == (1767323048.2, 60, "cron.service ×60")


# -- the page -----------------------------------------------------------------------

def scrub(html: str) -> str:
    """The version is the release's: compare the page around it."""
    return html.replace(f"nettrail {VERSION}", "nettrail VERSION")


@pytest.mark.parametrize("capture", [SMALL, V2], ids=["v1", "v2"])
def test_gold_file(monkeypatch: pytest.MonkeyPatch, utc: None, capture: Path) -> None:
    monkeypatch.chdir(ROOT)
    data = aggregate([open_capture(capture.relative_to(ROOT))])
    html = scrub(render(data, make_charts(data), generated_at="GENERATED"))
    gold = capture.with_name(capture.name + ".gold.html")
    if os.environ.get("UPDATE_GOLD"):
        gold.write_text(html)
    assert html == gold.read_text(), "rendered HTML changed: review, then UPDATE_GOLD=1"


def test_times_name_their_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        html = write_report(copy_capture(tmp_path, V2)).read_text()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "CET, UTC+01:00" in html and "local time (CET, UTC+01:00)" in html
    assert ">04:04:06.000<" in html  # 03:04:06 UTC
    assert 'title="2026-01-02 03:04:06.000 UTC"' in html


def test_report_is_self_contained_and_private(tmp_path: Path) -> None:
    out = write_report(copy_capture(tmp_path, V2))
    html = out.read_text()
    assert out.stat().st_mode & 0o077 == 0
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html and "@import" not in html and " style=" not in html
    assert html.count('<figure class="chart timed"') == 4
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
    data = aggregate([open_capture(capture)])
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


def hostile_capture(tmp_path: Path, source: Path = SMALL) -> Path:
    capture = copy_capture(tmp_path, source)
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


def test_control_and_bidi_characters_never_reach_the_page(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path, V2)
    path = capture / "tcptop.jsonl"
    path.write_text(path.read_text().replace('"curl"', '"cu\\u001b[2Jrl\\u202e"'))
    html = write_report(capture).read_text()
    assert "\u202e" not in html and "\x1b" not in html and "cu\\x1b[2Jrl\\u202e" in html


def test_unreadable_log_is_a_warning(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path)
    (capture / "dns.jsonl").unlink()
    (capture / "dns.jsonl").mkdir()  # exists, cannot be read as a file
    assert "dns.jsonl cannot be read" in aggregate([open_capture(capture)]).warnings[0]


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


def test_probe_notes_say_what_a_running_probe_missed() -> None:
    dns = {"status": "ok", "wire": "off", "degraded": ["without CAP_SYS_PTRACE (x)"],
           "not_probed": [{"path": "/srv/c1/lib/libc.so.6\x1b[2J", "pid": 4,
                           "reason": "not a regular file"}], "not_probed_unlisted": 2}
    assert probe_notes("dns", dns) == [
        "ran without CAP_SYS_PTRACE (x)",
        "wire-level DNS off: lookups by resolvers that bypass libc (Go, dig, …) are not in "
        "this capture (--probes +wire)",
        "3 libraries not probed, e.g. /srv/c1/lib/libc.so.6\\x1b[2J: not a regular file"]
    assert probe_notes("dns", {"status": "ok", "wire": "on"}) == []
    assert probe_notes("sessions", {"status": "ok"}) == []


def test_latency_scale_has_a_span_whatever_the_latencies() -> None:
    # lookups all under the 0.01 ms floor made a one-tick scale: division by zero
    from nettrail.report.histogram import log_decades as _log_ticks
    for low, high in ((0.01, 0.005), (1.0, 1.0), (0.01, 0.01), (3.0, 40.0)):
        ticks = _log_ticks(low, high)
        assert len(ticks) >= 2 and ticks[0] <= low and ticks[-1] >= high
