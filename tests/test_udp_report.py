"""The report's UDP part (report/udp.py, templates/udp.j2), root-free: flows
in their table and in the bandwidth charts, QUIC named, and one line where a
capture did not cover UDP (report/coverage.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.format import LOGS
from nettrail.report.aggregate import aggregate
from nettrail.report.build import make_charts
from nettrail.report.reader import open_capture
from nettrail.report.render import render
from nettrail.report.udp import service_of

V2 = Path(__file__).parent / "data" / "capture_v2"
IDENTITY = {"host": "web-3", "nspid": None, "cgroup": "/system.slice/edge.service",
            "container": None, "unit": "edge.service", "container_name": None, "pod": None,
            "pod_namespace": None, "pod_uid": None, "netns": 4026531840, "family": "ipv4"}


def flow(interval: int, pid: int, comm: str, lport: int, raddr: str, rport: int,
         rx: tuple[int, int], tx: tuple[int, int], dropped: int | None = 0) -> dict:
    ts = 1767323045.0 + 2 * interval
    return {"kind": "udp", "ts": ts, "interval": interval, "interval_s": 2.0, "pid": pid,
            "comm": comm, **IDENTITY, "laddr": "10.0.0.5", "lport": lport, "raddr": raddr,
            "rport": rport, "rx_bytes": rx[1], "tx_bytes": tx[1], "rx_datagrams": rx[0],
            "tx_datagrams": tx[0], "dropped_datagrams": dropped, "first_ts": ts - 1.5,
            "last_ts": ts - 0.5}


LINES = [flow(1, 700, "h3client", 45000, "192.0.2.30", 443, (40, 48_000), (10, 1_200)),
         flow(2, 700, "h3client", 45000, "192.0.2.30", 443, (60, 72_000), (12, 1_440)),
         flow(2, 800, "collector", 8125, "10.0.0.9", 51000, (500, 25_000), (0, 0), 7),
         flow(2, 800, "collector", 8125, "10.0.0.8", 51001, (20, 1_000), (0, 0)),
         flow(2, 900, "media", 40001, "198.51.100.4", 40002, (0, 0), (300, 360_000), None)]


def page(directory: Path) -> str:
    data = aggregate([open_capture(directory)])
    return render(data, make_charts(data), generated_at="GENERATED")


def with_udp(tmp_path: Path, lines: list[dict]) -> Path:
    target = tmp_path / "capture"
    shutil.copytree(V2, target)
    meta = json.loads((target / "meta.json").read_text())
    meta["probes"]["udp"] = {"status": "ok", "hook": "cgroup_skb", "error": None}
    meta["lost_events"]["udp"] = 0
    (target / "meta.json").write_text(json.dumps(meta))
    (target / LOGS["udp"].file).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return target


def test_services_are_named_by_either_port() -> None:
    assert service_of(45000, 443) == "QUIC" and service_of(443, 45000) == "QUIC"
    assert service_of(8125, 51000) == "statsd" and service_of(40001, 40002) == "UDP"


def test_flows_are_summed_per_process_remote_and_port(tmp_path: Path) -> None:
    udp = aggregate([open_capture(with_udp(tmp_path, LINES))]).udp
    assert udp.captured and udp.count == 4 and udp.lines == len(LINES)
    rows = {(r.process, r.service, r.side, r.remote, r.port): (
        r.rx_datagrams, r.rx_bytes, r.tx_datagrams, r.tx_bytes, r.dropped_datagrams)
        for r in udp.rows}
    assert rows == {
        ("h3client (700)", "QUIC", "client", "192.0.2.30:443", 443): (100, 120_000, 22, 2_640, 0),
        ("collector (800)", "statsd", "server", "10.0.0.9", 8125): (500, 25_000, 0, 0, 7),
        ("collector (800)", "statsd", "server", "10.0.0.8", 8125): (20, 1_000, 0, 0, 0),
        ("media (900)", "UDP", "server", "198.51.100.4", 40001): (0, 0, 300, 360_000, 0)}
    assert (udp.rx_bytes, udp.tx_bytes, udp.dropped_datagrams) == (146_000, 362_640, 7)


def test_udp_is_charted_marked_and_kept_out_of_the_headline(tmp_path: Path) -> None:
    before = aggregate([open_capture(V2)])
    data = aggregate([open_capture(with_udp(tmp_path, LINES))])
    labels = [s.label for s in data.bandwidth.series]
    assert "edge.service · QUIC" in labels and "edge.service · UDP" in labels
    assert data.bandwidth.rx_bytes == before.bandwidth.rx_bytes + 146_000
    assert data.bandwidth.tx_bytes == before.bandwidth.tx_bytes + 362_640
    assert data.headline == before.headline
    assert [(p.label, p.rx_bytes) for p in data.processes] == [
        (p.label, p.rx_bytes) for p in before.processes]


def test_the_page_shows_the_flows(tmp_path: Path) -> None:
    html = page(with_udp(tmp_path, LINES))
    assert 'id="t-udp"' in html and '<span class="badge">QUIC</span>' in html
    assert 'data-unseen="udp"' not in html and "udp probe was not asked" not in html


def test_a_capture_without_udp_says_so_once(tmp_path: Path) -> None:
    html = page(V2)
    assert html.count("UDP: not captured (capture with --probes +udp") == 1
    assert html.count(">UDP") == 1 and 'id="t-udp"' not in html


def test_a_capture_with_udp_and_no_traffic_says_none_was_seen(tmp_path: Path) -> None:
    html = page(with_udp(tmp_path, []))
    assert "No UDP traffic seen." in html and 'data-unseen="udp"' not in html
