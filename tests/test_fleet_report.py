"""Fleet reports without root: hand-written /2 captures of two hosts (web-3
the client, db-1 the server), aggregated and rendered. Connections are
matched when the 4-tuple is reversed and the times overlap; ports reused
later, address translation and loopback stay unmatched."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from nettrail.errors import BadCapture, ExitStatus, UsageError
from nettrail.format import BANDWIDTH, DNS, META, SESSIONS
from nettrail.report.aggregate import ReportData, aggregate
from nettrail.report.build import make_charts, write_report
from nettrail.report.reader import open_capture, open_captures
from nettrail.report.render import render, say
from helpers import nettrail

V2_META = Path(__file__).parent / "data" / "capture_v2" / META
T0 = 1767323045.0  # 2026-01-02T03:04:05Z: web-3's start; db-1 starts a second later
IDENTITY = {"nspid": None, "cgroup": None, "container": None, "unit": None}


def session(host: str, pid: int, comm: str, local: tuple[str, int], remote: tuple[str, int],
            side: str | None, tx: int, rx: int, opened: float, closed: float, retrans: int = 0,
            srtt_us: int = 500) -> dict:
    return {"kind": "session", "ts": closed, "host": host, "pid": pid, "comm": comm,
            **IDENTITY, "netns": 1, "family": "ipv6" if ":" in local[0] else "ipv4",
            "laddr": local[0], "lport": local[1], "raddr": remote[0], "rport": remote[1],
            "side": side, "tx_bytes": tx, "rx_bytes": rx, "retrans_segs": retrans,
            "srtt_us": srtt_us, "opened_at": opened, "duration_ms": (closed - opened) * 1000,
            "state": "closed", "end": "normal"}


def bandwidth(host: str, pid: int, comm: str, interval: int, ts: float, rx: int, tx: int
              ) -> dict:
    return {"kind": "bandwidth", "ts": ts, "interval": interval, "interval_s": 2.0,
            "host": host, "pid": pid, "comm": comm, **IDENTITY, "netns": 1, "family": "ipv4",
            "laddr": "10.0.0.5", "lport": 40000, "raddr": "10.0.0.9", "rport": 5432,
            "side": "client", "rx_bytes": rx, "tx_bytes": tx, "retrans_bytes": 0,
            "srtt_us": 400}


def lookup(host: str, pid: int, comm: str, ts: float, name: str, ok: bool) -> dict:
    return {"kind": "lookup", "ts": ts, "host": host, "pid": pid, "comm": comm, **IDENTITY,
            "source": "libc", "name": name, "name_truncated": False, "qtype": None,
            "function": "getaddrinfo", "server": None, "latency_ms": 4.0, "ok": ok,
            "error": None if ok else "EAI_NONAME", "addresses": ["10.0.0.9"] if ok else [],
            "pending": False, "resolved_by": "dns", "call_ts": None}


def write_capture(directory: Path, host: str, start: float, logs: dict[str, list[dict]]
                  ) -> Path:
    meta = json.loads(V2_META.read_text())
    iso = lambda ts: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))  # noqa: E731
    meta.update(host=host, started_at=iso(start), ended_at=iso(start + 6))
    directory.mkdir(mode=0o700)
    (directory / META).write_text(json.dumps(meta))
    for name in (BANDWIDTH, SESSIONS, DNS):
        (directory / name).write_text("".join(json.dumps(r) + "\n"
                                              for r in logs.get(name, [])))
    return directory


WEB, DB = ("10.0.0.5", 40000), ("10.0.0.9", 5432)


@pytest.fixture
def fleet(tmp_path: Path) -> list[Path]:
    return write_fleet(tmp_path)


def write_fleet(tmp_path: Path) -> list[Path]:
    """web-3's api (pid 812) talks to db-1's postgres (pid 77): two
    connections matched (one seen by a dual-stack socket on db-1), one port
    reused a minute later (no overlap), one through a NAT'd service address,
    one on loopback."""
    web = write_capture(tmp_path / "web-3", "web-3", T0, {
        SESSIONS: [
            session("web-3", 812, "api", WEB, DB, "client", 1000, 5000, T0 + 1, T0 + 2,
                    retrans=2, srtt_us=900),
            session("web-3", 812, "api", ("10.0.0.5", 40001), DB, "client", 300, 700,
                    T0 + 2, T0 + 4),
            session("web-3", 812, "api", ("10.0.0.5", 40002), ("10.96.0.10", 5432), "client",
                    10, 20, T0 + 3, T0 + 4),
            session("web-3", 812, "api", ("127.0.0.1", 40003), ("127.0.0.1", 6379), "client",
                    1, 1, T0 + 3, T0 + 4),
            session("web-3", 813, "worker", ("10.0.0.5", 40010), ("10.0.0.9", 50000),
                    "client", 40, 60, T0 + 5, T0 + 5.5)],
        BANDWIDTH: [bandwidth("web-3", 812, "api", 1, T0 + 2, 5000, 1000),
                    bandwidth("web-3", 812, "api", 2, T0 + 4, 700, 300)],
        DNS: [lookup("web-3", 812, "api", T0 + 0.5, "db.internal", True)]})
    db = write_capture(tmp_path / "db-1", "db-1", T0 + 1, {
        SESSIONS: [
            session("db-1", 77, "postgres", DB, WEB, "server", 5000, 1000, T0 + 1.01,
                    T0 + 2.01, retrans=3, srtt_us=1200),
            session("db-1", 77, "postgres", ("::ffff:10.0.0.9", 5432),
                    ("::ffff:10.0.0.5", 40001), "server", 700, 300, T0 + 2, T0 + 4),
            # the same 4-tuple as the first, a minute later: port reuse
            session("db-1", 77, "postgres", DB, WEB, "server", 9, 9, T0 + 60, T0 + 61),
            # behind the service address the server sees the node's address
            session("db-1", 77, "postgres", DB, ("10.244.1.1", 40002), "server", 20, 10,
                    T0 + 3, T0 + 4),
            session("db-1", 99, "redis", ("127.0.0.1", 6379), ("127.0.0.1", 40003), "server",
                    1, 1, T0 + 3, T0 + 4),
            # no side recorded, and the ports would guess it wrong: web-3's end knows
            session("db-1", 78, "queue", ("10.0.0.9", 50000), ("10.0.0.5", 40010), None,
                    60, 40, T0 + 5, T0 + 5.5)],
        BANDWIDTH: [bandwidth("db-1", 77, "postgres", 1, T0 + 3, 1000, 5000)],
        DNS: [lookup("db-1", 77, "postgres", T0 + 1.5, "missing.internal", False)]})
    return [web, db]


def fleet_data(paths: list[Path]) -> ReportData:
    return aggregate(open_captures(paths))


def test_connections_are_matched_across_hosts(fleet: list[Path]) -> None:
    cv = fleet_data(fleet).conversations
    row, queue = cv.rows
    assert (queue.text, queue.service, queue.guessed) == (
        "web-3:worker (813) → db-1:queue (78)", "10.0.0.9:50000", 0)
    assert row.text == "web-3:api (812) → db-1:postgres (77)"
    assert (row.service, row.connections) == ("10.0.0.9:5432", 2)
    assert (row.client_tx_bytes, row.server_rx_bytes) == (1300, 1300)
    assert (row.server_tx_bytes, row.client_rx_bytes) == (5700, 5700)
    assert (row.client_retrans_segs, row.server_retrans_segs) == (2, 3)
    assert (row.client_srtt_us, row.server_srtt_us) == (900, 1200)
    assert (row.first_ts, row.last_ts) == (T0 + 1, T0 + 4)
    # reused port, NAT'd pair, loopback pair: unmatched
    assert (cv.sessions, cv.matched, cv.unmatched, cv.given_up) == (11, 6, 5, 0)


def test_the_order_of_the_directories_does_not_matter(fleet: list[Path]) -> None:
    forward = fleet_data(fleet).conversations.rows
    assert fleet_data(fleet[::-1]).conversations.rows == forward


def test_one_clock_hosts_and_per_host_totals(fleet: list[Path]) -> None:
    data = fleet_data(fleet)
    assert data.fleet and (data.clock.start, data.clock.end) == (T0, T0 + 7)
    assert [(r.header.host, r.header.started_at) for r in data.hosts] == [
        ("web-3", "2026-01-02T03:04:05.000Z"), ("db-1", "2026-01-02T03:04:06.000Z")]
    totals = {r.header.host: r.headline for r in data.hosts}
    assert (totals["web-3"].rx_bytes, totals["web-3"].tx_bytes) == (5700, 1300)
    assert (totals["web-3"].sessions, totals["web-3"].lookups) == (5, 1)
    assert (totals["db-1"].sessions, totals["db-1"].failed_lookups) == (6, 1)
    assert {(p.host, p.process) for p in data.processes} == {
        ("web-3", "api (812)"), ("web-3", "worker (813)"), ("db-1", "postgres (77)"),
        ("db-1", "redis (99)"), ("db-1", "queue (78)")}
    # db-1's first interval ends a second after web-3's: one grid of 2 s slots
    assert [(iv.end - T0, iv.seconds) for iv in data.bandwidth.intervals] == [
        (2.0, 2.0), (4.0, 2.0)]
    assert {s.label: (s.rx_bytes, s.tx_bytes) for s in data.bandwidth.series} == {
        "web-3:api (812)": ([5000, 700], [1000, 300]),
        "db-1:postgres (77)": ([0, 1000], [0, 5000])}
    assert any("address translation (NAT, Kubernetes services, load balancers)" in n
               for n in data.notes)


def test_retransmitting_conversation_stands_out(fleet: list[Path]) -> None:
    texts = [say(f) for f in fleet_data(fleet).findings]
    assert ("web-3:api (812) → db-1:postgres (77) (10.0.0.9:5432): 5 segments retransmitted "
            "over 2 connections (2 by the client, 3 by the server)") in texts


def test_fleet_page(fleet: list[Path], tmp_path: Path) -> None:
    data = fleet_data(fleet)
    html = render(data, make_charts(data), "GENERATED")
    assert html.count('<section id="conversations">') == 1
    assert "web-3:api (812)</a> → <a" in html and "db-1:postgres (77)</a>" in html
    assert '<td class="name">db-1</td><td class="name"><a href="#t-groups" ' \
           'data-filter="db-1:postgres (77)">db-1:postgres (77)</a>' in html
    assert "address translation (NAT, Kubernetes services, load balancers)" in html
    assert "2026-01-02 03:04:06.000 UTC → 2026-01-02 03:04:12.000 UTC" in html


def test_same_host_twice_is_refused(fleet: list[Path], tmp_path: Path) -> None:
    again = write_capture(tmp_path / "web-3-again", "web-3", T0 + 30, {})
    with pytest.raises(BadCapture, match="both captures of host 'web-3'"):
        open_captures([fleet[0], fleet[1], again])


def test_several_directories_need_an_output(fleet: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        write_report(fleet)
    result = nettrail("report", *map(str, fleet))
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr.count("\n") == 1 and "needs -o FILE" in result.stderr
    out = tmp_path / "fleet.html"
    result = nettrail("report", *map(str, fleet), "-o", str(out))
    assert result.returncode == 0 and result.stdout == f"{out}\n"
    assert os.stat(out).st_mode & 0o077 == 0
    assert "web-3:api (812)" in out.read_text()


def test_one_directory_is_a_fleet_of_one(fleet: list[Path]) -> None:
    data = aggregate([open_capture(fleet[0])])
    assert not data.fleet and data.conversations is None
    assert {p.label for p in data.processes} == {"api (812)", "worker (813)"}


def test_hostile_host_names_are_text(fleet: list[Path], tmp_path: Path) -> None:
    evil = write_capture(tmp_path / "evil", "ev\u202eil<b>x</b>", T0, {SESSIONS: [
        session("ignored", 5, "sh", ("10.0.0.7", 40000), DB, "client", 1, 1, T0, T0 + 1)]})
    data = aggregate(open_captures([fleet[1], evil]))
    html = render(data, make_charts(data), "GENERATED")
    assert "\u202e" not in html and "<b>x" not in html
    assert "ev\\u202eil&lt;b&gt;x&lt;/b&gt;:sh (5)" in html


def test_matcher_bounds_give_up_the_oldest_and_keep_matching(monkeypatch) -> None:
    """At most KEEP_WAITING ends wait, in two generations (the old one given
    up whole when the young holds half), at most KEEP_PER_TUPLE per 4-tuple;
    ends are matched in either generation, and matching goes on after
    giving up."""
    from types import SimpleNamespace
    from nettrail.report import conversations
    monkeypatch.setattr(conversations, "KEEP_WAITING", 10)

    def end(local: tuple[str, int], remote: tuple[str, int], side: str, t: float):
        return SimpleNamespace(**session("h", 1, side, local, remote, side, 1, 2, t, t + 0.1))

    m = conversations.Matcher()
    # 15 clients whose servers never show: the oldest generation (5) is given up
    clients = [end(("10.0.0.1", 30000 + i), ("10.0.0.2", 80), "client", T0) for i in range(15)]
    m.feed("web", clients, [("curl", None)] * 15)
    assert (m.waiting_count, m.given_up, m.matched) == (10, 5, 0)
    # one 4-tuple reused 5 times at once: the next generation goes (5), and
    # the oldest of those 5 (past KEEP_PER_TUPLE)
    reused = [end(("10.0.0.1", 40000), ("10.0.0.2", 80), "client", T0 + i) for i in range(5)]
    m.feed("web", reused, [("curl", None)] * 5)
    assert (m.waiting_count, m.given_up) == (5 + 4, 5 + 5 + 1)
    # one of those still waiting is matched by its server (the one whose
    # lifetime overlaps), one client of the old generation by its server
    m.feed("db", [end(("10.0.0.2", 80), ("10.0.0.1", 40000), "server", T0 + 4),
                  end(("10.0.0.2", 80), ("10.0.0.1", 30012), "server", T0)],
           [("postgres", None)] * 2)
    assert (m.waiting_count, m.matched) == (4 + 3, 4)
    # 200 more pairs: each matched at once, nothing more waits
    for i in range(200):
        pair = ((("10.0.0.1", 50000 + i), ("10.0.0.2", 80), "client"),
                (("10.0.0.2", 80), ("10.0.0.1", 50000 + i), "server"))
        for host, (local, remote, side) in zip(("web", "db"), pair):
            m.feed(host, [end(local, remote, side, T0 + 5)], [(side, None)])
    assert m.matched == 2 * 202 and m.sessions == 15 + 5 + 2 + 400
    assert (m.waiting_count, m.given_up) == (7, 11)
    assert [(row.client, row.server, row.connections) for row in m.result(10).rows] == [
        ("client", "server", 200), ("curl", "postgres", 2)]
