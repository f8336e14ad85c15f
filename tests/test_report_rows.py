"""What the table rows say of their times and addresses, root-free: sessions
opened before the window found in the tables the totals line counts them
in; first and last times as exact as the logs carry them (sessions' own
times; interval edges only where bytes are all there is, and said so); the
host's own addresses marked where they are a remote."""

from __future__ import annotations

import re
from pathlib import Path

from nettrail.report.aggregate import aggregate
from nettrail.report.build import make_charts
from nettrail.report.reader import open_capture
from nettrail.report.render import render
from test_budget import write_capture
from test_report import HOSTILE_COMM, SMALL, V2, copy_capture
from test_report_v3 import append, lines

START = 1767323045.0  # capture_v2's window: 3 intervals of 2 s


def page(data: object) -> str:
    return render(data, make_charts(data), generated_at="now")  # type: ignore[arg-type]


def rows(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}">', 1)[1].split("</tbody>", 1)[0]
    return body.split("<tbody>", 1)[1].split("</tr>")[:-1]


def before_window(tmp_path: Path) -> Path:
    """capture_v2 and two more sessions already open when the window started,
    to two remotes of their own (one reset in the window, one still open)."""
    capture = copy_capture(tmp_path, V2)
    sshd, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 200]
    append(capture, "tcplife.jsonl", [
        sshd | {"raddr": "198.51.100.8", "rport": 50001, "ts": START + 3.25,
                "state": "closed", "end": "reset"},
        sshd | {"raddr": "198.51.100.9", "rport": 50002}])
    return capture


def test_sessions_opened_before_the_window_are_in_the_tables(tmp_path: Path) -> None:
    data = aggregate([open_capture(before_window(tmp_path))])
    assert data.sessions.before_window == 3
    early = {g.remote: g.before_window for g in data.groups if g.before_window}
    assert early == {"198.51.100.7": 1, "198.51.100.8": 1, "198.51.100.9": 1}
    html = page(data)
    # the count links to a filter that shows exactly those rows
    assert ('<a href="#t-groups" data-filter="before the window">3 opened before the window'
            '</a>') in html
    shown = [r for r in rows(html, "t-groups") if "before the window" in r]
    assert len(shown) == 3 and all(">198.51.100." in r for r in shown)
    closed, = [r for r in shown if "198.51.100.8" in r]
    assert ('title="1 session of 1 already open when the window started: the capture did not '
            'see it open">before the window</td>') in closed
    # ended in the window: its exact end, not the interval's
    assert 'data-v="1767323048.25" title="2026-01-02 03:04:08.250 UTC">' in closed
    still_open, = [r for r in shown if "198.51.100.9" in r]
    assert ">open at the end</td>" in still_open
    # the reset one is listed on its own too: no duration, and why
    reset, = [r for r in rows(html, "t-odd") if "198.51.100.8" in r]
    assert ('<td data-v="-1" title="the capture did not see it open: no duration">before the '
            'window</td>') in reset


def test_before_the_window_counts_the_same_from_summaries(tmp_path: Path) -> None:
    write_capture(tmp_path / "lines", None)
    write_capture(tmp_path / "budget", 300)
    every, budgeted = (aggregate([open_capture(tmp_path / name)]) for name in ("lines", "budget"))
    for data in (every, budgeted):
        assert sum(g.before_window for g in data.groups) == data.sessions.before_window > 0
    assert ({(g.process, g.remote, g.port, g.before_window) for g in every.groups}
            == {(g.process, g.remote, g.port, g.before_window) for g in budgeted.groups})


def test_first_and_last_are_the_sessions_own_times() -> None:
    data = aggregate([open_capture(SMALL)])
    groups = {g.process: g for g in data.groups}
    # curl opened at 05.5 and closed at 07.0; its bytes came in intervals 05-06, 06-07
    curl = groups["curl (100)"]
    assert (curl.first_ts, curl.last_ts, curl.times_per_interval) == (
        1767323045.5, 1767323047.0, False)
    probe = groups["probe (400)"]
    assert (probe.first_ts, probe.last_ts) == (1767323046.0, 1767323046.03)
    # backup has no session line: only its interval's edges, and the row says so
    backup = groups["backup (300)"]
    assert (backup.first_ts, backup.last_ts, backup.times_per_interval) == (
        1767323047.0, 1767323048.0, True)
    html = page(data)
    backup_row, = [r for r in rows(html, "t-groups") if "backup (300)" in r]
    assert backup_row.count("(bytes are counted per interval; no session of it was logged)") == 2
    curl_row, = [r for r in rows(html, "t-groups") if "curl (100)" in r]
    assert "counted per interval" not in curl_row
    assert 'data-v="1767323045.5" title="2026-01-02 03:04:05.500 UTC">03:04:05.500<' in curl_row


def test_first_seen_says_when_it_is_an_interval_start() -> None:
    data = aggregate([open_capture(SMALL)])
    programs = {p.command: p for p in data.who.programs}
    # curl's bytes came in the first interval (from 05.0), before its first lookup
    assert (programs["curl"].first_ts, programs["curl"].first_per_interval) == (
        1767323045.0, True)
    # probe moved no bytes: its first record's own time
    assert (programs["probe"].first_ts, programs["probe"].first_per_interval) == (
        1767323046.0, False)
    assert (programs["wget"].first_ts, programs["wget"].first_per_interval) == (
        1767323045.4, False)
    html = page(data)
    by_program = {re.search(r'data-filter="([^"]+)"', r).group(1): r
                  for r in rows(html, "t-processes")}
    assert "first interval it moved bytes in" in by_program["curl"]
    assert "first interval it moved bytes in" not in by_program["wget"]
    # tcptop's view: every time is an interval's end, and says so
    intervals = rows(html, "t-intervals")
    assert len(intervals) == 4 and all(
        "bytes are counted per interval" in r for r in intervals)


def own_addresses(tmp_path: Path) -> Path:
    """capture_v2 and: app connecting to the host's own 10.0.0.5 (refused), to
    loopback (reset), and to 10.0.0.9, a local address only tcptop.jsonl names."""
    capture = copy_capture(tmp_path, V2)
    ok, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 100]
    bw = [r for r in lines(capture, "tcptop.jsonl") if r["pid"] == 100][0]
    app = {"pid": 900, "comm": "app", "laddr": "10.0.0.5", "lport": 47000, "side": "client"}
    append(capture, "tcplife.jsonl", [
        ok | app | {"raddr": "10.0.0.5", "rport": 9000, "end": "refused"},
        ok | app | {"raddr": "127.0.0.1", "rport": 9001, "end": "reset"},
        ok | app | {"raddr": "10.0.0.9", "rport": 9002, "end": "reset"}])
    append(capture, "tcptop.jsonl", [
        bw | {"pid": 901, "comm": "db", "laddr": "10.0.0.9", "lport": 9002,
              "raddr": "192.0.2.60", "rport": 51000, "side": "server"},
        bw | app | {"raddr": "10.0.0.5", "rport": 9000}])
    return capture


def test_the_hosts_own_addresses_are_marked(tmp_path: Path) -> None:
    data = aggregate([open_capture(own_addresses(tmp_path))])
    assert data.addresses == ["10.0.0.5", "10.0.0.9", "172.17.0.2", "2001:db8::5"]
    marks = {g.remote: g.remote_is for g in data.groups if g.process == "app (900)"}
    assert marks == {"10.0.0.5:9000": "own", "127.0.0.1:9001": "loopback",
                     "10.0.0.9:9002": "own", "192.0.2.30:5432": None}
    assert {s.remote: s.remote_is for s in data.sessions.odd if s.process == "app (900)"} == {
        "10.0.0.5:9000": "own", "127.0.0.1:9001": "loopback", "10.0.0.9:9002": "own"}
    assert {r.remote: r.remote_is for r in data.snapshot.kept if r.process == "app (900)"} == {
        "10.0.0.5:9000": "own", "192.0.2.30:5432": None}
    assert all(g.remote_is is None for g in data.groups if g.process != "app (900)")
    html = page(data)
    for table, own, loopback in (("t-groups", 2, 1), ("t-odd", 2, 1), ("t-intervals", 1, 0)):
        body = "".join(rows(html, table))
        assert body.count(">this host</span>") == own, table
        assert body.count(">loopback</span>") == loopback, table
    assert "<dt>addresses</dt>\n<dd>\n10.0.0.5, 10.0.0.9, 172.17.0.2, 2001:db8::5\n" in html
    # app's bytes to the host's own address stay on the host (counted once, as sent)
    v = data.who.volume
    assert (v.local_bytes, v.network_tx_bytes) == (1000, 765_670 + 1000)


def test_a_hostile_local_address_is_escaped(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path, V2)
    path = capture / "tcptop.jsonl"
    path.write_text(path.read_text().replace('"172.17.0.2"', '"\\u001b[2J' + HOSTILE_COMM
                                             .replace('"', '\\"') + '"'))
    html = page(aggregate([open_capture(capture)]))
    assert HOSTILE_COMM not in html and "\x1b" not in html
    assert "2001:db8::5, \\x1b[2J&lt;script&gt;alert(1)&lt;/script&gt;\n" in html


def slow_peak(tmp_path: Path) -> Path:
    """capture_v2 and a peak: 12 sessions of 300 ms from `slowpoke` to one
    server, and 30 of 2 ms from `quick` to another."""
    capture = copy_capture(tmp_path, V2)
    ok, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 100]

    def closed(pid: int, comm: str, n: int, raddr: str, ms: float) -> dict:
        opened = START + 1 + n * 0.01
        return ok | {"pid": pid, "comm": comm, "lport": 30000 + pid + n, "raddr": raddr,
                     "rport": 8080, "opened_at": opened, "ts": opened + ms / 1000,
                     "duration_ms": ms}
    append(capture, "tcplife.jsonl", [
        *(closed(810, "slowpoke", n, "192.0.2.70", 300.0) for n in range(12)),
        *(closed(811, "quick", n, "192.0.2.71", 2.0) for n in range(30))])
    return capture


def test_a_duration_bar_links_to_the_groups_of_its_sessions(tmp_path: Path) -> None:
    data = aggregate([open_capture(slow_peak(tmp_path))])
    chart = make_charts(data)["durations"]
    bars = {b.bin: b for b in chart.bars}
    peak, = [b for b in bars.values() if "of 251.2 ms–398.1 ms" in b.title]
    assert peak.title == "12 sessions of 251.2 ms–398.1 ms"
    marked = {g.process: g.duration_bins for g in data.groups}
    assert [p for p, bins in marked.items() if peak.bin in bins] == ["slowpoke (810)"]
    assert marked["slowpoke (810)"] == [peak.bin]
    quick, = [b for b in bars.values() if b.bin in marked["quick (811)"]]
    assert quick.title == "30 sessions of 1.6 ms–2.5 ms"
    # every bar's sessions are in the groups it names, and only there
    for b in chart.bars:
        count = sum(n for g in data.groups if g.durations is not None
                    for value, n in g.durations.items()
                    if b.bin in g.duration_bins and chart_bin(data, value) == b.bin)
        assert b.title.startswith(f"{count:,} session"), b.title
    html = page(data)
    assert (f'<a href="#t-groups" data-bin="{peak.bin}" '
            'data-label="12 sessions of 251.2 ms–398.1 ms">') in html
    tagged = [r for r in rows(html, "t-groups") if re.search(
        rf'^<tr data-bins="([0-9 ]* )?{peak.bin}( [0-9 ]*)?">', r.strip())]
    assert len(tagged) == 1 and "slowpoke (810)" in tagged[0]


def chart_bin(data: object, value: float) -> int:
    from nettrail.report.histogram import duration_bins
    return duration_bins(data.sessions.durations).of(value)  # type: ignore[attr-defined]


def test_summarised_sessions_are_in_their_groups_bars(tmp_path: Path) -> None:
    """Past the line budget the durations come from summaries: in the chart
    and in the groups' bins alike."""
    write_capture(tmp_path / "budget", 300)
    data = aggregate([open_capture(tmp_path / "budget")])
    assert data.sessions.summarised
    for b in make_charts(data)["durations"].bars:
        count = sum(n for g in data.groups if g.durations is not None
                    for value, n in g.durations.items() if chart_bin(data, value) == b.bin)
        assert b.title.startswith(f"{count:,} session"), b.title
        assert all(b.bin in g.duration_bins for g in data.groups if g.durations is not None
                   and any(chart_bin(data, v) == b.bin for v, _n in g.durations.items()))
