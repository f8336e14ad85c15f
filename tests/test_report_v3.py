"""Report v3's top of the page and who-did-it views, root-free: programs
(one row for many processes of a command), destinations and the
network/loopback split, storms at a sustained rate, loopback failures
counted once, unanswered connects, and what the capture did not see."""

from __future__ import annotations

import json
from pathlib import Path

from nettrail.headline import Headline
from nettrail.report.aggregate import aggregate
from nettrail.report.coverage import UDP_PROBES
from nettrail.report.reader import open_capture
from nettrail.report.render import say, summary_line
from nettrail.report.storms import STORM_SESSIONS_PER_S
from test_report import V2, copy_capture

START = 1767323045.0  # capture_v2's window: 6 s


def lines(capture: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (capture / name).read_text().splitlines()]


def append(capture: Path, name: str, records: list[dict]) -> None:
    with (capture / name).open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def same_program(tmp_path: Path, count: int = 20) -> Path:
    """`count` one-shot wget processes fetching from one server, each refused once."""
    capture = copy_capture(tmp_path, V2)
    bw, = [r for r in lines(capture, "tcptop.jsonl") if r["pid"] == 100][:1]
    ok, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 100]
    refused = [r for r in lines(capture, "tcplife.jsonl") if r["end"] == "refused"][0]
    append(capture, "tcptop.jsonl", [bw | {"pid": 6000 + n, "comm": "wget", "lport": 45000 + n,
                                           "raddr": "192.0.2.40", "rport": 8080,
                                           "rx_bytes": 600_000, "tx_bytes": 200}
                                     for n in range(count)])
    append(capture, "tcplife.jsonl", [
        *(ok | {"pid": 6000 + n, "comm": "wget", "lport": 45000 + n, "raddr": "192.0.2.40",
                "rport": 8080} for n in range(count)),
        *(refused | ok | {"pid": 6000 + n, "end": "refused", "comm": "wget", "lport": 46000 + n,
                     "raddr": "192.0.2.41", "rport": 8080} for n in range(count))])
    return capture


def test_twenty_processes_of_one_program_are_one_row(tmp_path: Path) -> None:
    data = aggregate([open_capture(same_program(tmp_path))])
    wget = [p for p in data.who.programs if p.command == "wget"]
    assert len(wget) == 1 and wget[0].process_count == 20 and len(wget[0].processes) == 20
    assert (wget[0].rx_bytes, wget[0].sessions, wget[0].failed_sessions) == (
        20 * 600_000, 40, 20)
    # the top talker names the program, its processes and where its bytes went
    top = next(f for f in data.findings if f.cause == "top_talker_bytes")
    assert top.values["who"] == "wget" and top.values["processes"] == 20
    assert top.values["to"][0][0] == "192.0.2.40:8080"
    assert say(top).startswith("top talker by bytes: wget (20 processes): 11.4 MiB in")
    # "most" counts one destination over the one-shot processes
    refused = next(f for f in data.findings if f.cause == "refused")
    assert say(refused) == "23 connections refused (most: wget → 192.0.2.41:8080 ×20)"


def storm(tmp_path: Path, per_second: int = 3 * STORM_SESSIONS_PER_S) -> Path:
    """A loader opening `per_second` sessions a second to one server, all window long."""
    capture = copy_capture(tmp_path, V2)
    ok, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 100]
    records = []
    for n in range(6 * per_second):
        opened = START + n / per_second
        records.append(ok | {"pid": 800, "comm": "loader", "lport": 10000 + n % 50000,
                             "raddr": "192.0.2.50", "rport": 9000, "opened_at": opened,
                             "ts": opened + 0.001, "duration_ms": 1.0, "tx_bytes": 10,
                             "rx_bytes": 10})
    append(capture, "tcplife.jsonl", records)
    return capture


def test_a_storm_all_window_long_is_found_by_its_rate(tmp_path: Path) -> None:
    data = aggregate([open_capture(storm(tmp_path))])
    found = {f.cause: f for f in data.findings}
    assert "burst" not in found  # every bucket is as busy: no burst, still a storm
    s = found["session_storm"]
    assert (s.values["count"], s.values["who"], s.values["where"]) == (
        3608, "loader", "192.0.2.50:9000")  # capture_v2 opened 8 of its own
    assert (round(s.values["per_second"]), round(s.values["who_per_second"]),
            s.values["busy_share"]) == (601, 600, 1.0)
    assert s.severity == "warn" and s.kind == "volume" and data.summary.cause is s
    assert summary_line(data) == (
        "Likely cause: connection storm: 3,608 sessions opened in 6 s, 601/s over the whole "
        "window (100.0% of it at 200/s or more); loader: 600/s; to 192.0.2.50:9000: 600/s")


def test_below_the_storm_rate_no_storm(tmp_path: Path) -> None:
    data = aggregate([open_capture(storm(tmp_path, STORM_SESSIONS_PER_S // 2))])
    assert "session_storm" not in {f.cause for f in data.findings}


def test_loopback_failures_and_bytes_count_once(tmp_path: Path) -> None:
    """A reset loopback connection is logged at both ends: one failure; its
    bytes are sent by one end and received by the other: counted once."""
    capture = copy_capture(tmp_path, V2)
    ok, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 100]
    bw = [r for r in lines(capture, "tcptop.jsonl") if r["pid"] == 100][0]
    ends = []
    for n in range(20):
        client = {"pid": 900, "comm": "app", "laddr": "127.0.0.1", "lport": 50000 + n,
                  "raddr": "127.0.0.1", "rport": 8000, "side": "client"}
        server = {"pid": 901, "comm": "api", "laddr": "127.0.0.1", "lport": 8000,
                  "raddr": "127.0.0.1", "rport": 50000 + n, "side": "server"}
        ends += [ok | client | {"end": "reset"}, ok | server | {"end": "reset"}]
    append(capture, "tcplife.jsonl", ends)
    append(capture, "tcptop.jsonl", [
        bw | {"pid": 900, "comm": "app", "laddr": "127.0.0.1", "lport": 50000,
              "raddr": "127.0.0.1", "rport": 8000, "side": "client", "tx_bytes": 1000,
              "rx_bytes": 0},
        bw | {"pid": 901, "comm": "api", "laddr": "127.0.0.1", "lport": 8000,
              "raddr": "127.0.0.1", "rport": 50000, "side": "server", "tx_bytes": 0,
              "rx_bytes": 1000}])
    data = aggregate([open_capture(capture)])
    assert data.sessions.ends["reset"] == 1 + 20
    assert data.headline.failed_sessions == 5 + 20
    headline = Headline()
    headline.add("sessions", lines(capture, "tcplife.jsonl"))  # the capture counts the same
    assert headline.failed_sessions == 5 + 20
    assert data.who.volume.local_bytes == 1000
    reset = next(f for f in data.findings if f.cause == "reset")
    assert say(reset) == "21 connections reset (most: app → 127.0.0.1:8000 ×20)"


def test_traffic_between_the_hosts_own_addresses_counts_once(tmp_path: Path) -> None:
    """Two namespaces of one host (10.77.0.1 and .2): both ends are captured."""
    capture = copy_capture(tmp_path, V2)
    ok, = [r for r in lines(capture, "tcplife.jsonl") if r["pid"] == 100]
    bw = [r for r in lines(capture, "tcptop.jsonl") if r["pid"] == 100][0]
    client = {"pid": 900, "comm": "app", "laddr": "10.77.0.1", "lport": 50000,
              "raddr": "10.77.0.2", "rport": 8000, "side": "client"}
    server = {"pid": 901, "comm": "api", "laddr": "10.77.0.2", "lport": 8000,
              "raddr": "10.77.0.1", "rport": 50000, "side": "server"}
    append(capture, "tcplife.jsonl", [ok | client, ok | server])
    append(capture, "tcptop.jsonl", [bw | client | {"tx_bytes": 5000, "rx_bytes": 0},
                                     bw | server | {"tx_bytes": 0, "rx_bytes": 5000}])
    before = aggregate([open_capture(copy_capture(tmp_path / "v2", V2))]).who.volume
    after = aggregate([open_capture(capture)]).who.volume
    assert (after.network_rx_bytes, after.network_tx_bytes, after.local_bytes) == (
        before.network_rx_bytes, before.network_tx_bytes, before.local_bytes + 5000)


def test_unanswered_connect_is_said_so(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path, V2)
    refused = [r for r in lines(capture, "tcplife.jsonl") if r["end"] == "refused"][0]
    append(capture, "tcplife.jsonl", [refused | {
        "state": "open", "end": None, "srtt_us": 0, "retrans_segs": 3, "duration_ms": 2000.0,
        "raddr": "192.0.2.99"}])
    data = aggregate([open_capture(capture)])
    s, = [s for s in data.sessions.odd if s.remote == "192.0.2.99:80"]
    assert s.unanswered and s.problems == ["connect unanswered"]


def test_what_the_capture_did_not_see_names_udp_once(tmp_path: Path) -> None:
    capture = copy_capture(tmp_path, V2)
    data = aggregate([open_capture(capture)])
    assert [u.what for u in data.unseen].count("udp") == 1
    assert UDP_PROBES == ("udp",)  # the probe h-24 adds: a run of it means UDP was seen
    meta = json.loads((capture / "meta.json").read_text())
    meta["probes"]["sessions"] = {"status": "skipped", "hook": None, "error": None}
    (capture / "meta.json").write_text(json.dumps(meta))
    data = aggregate([open_capture(capture)])
    assert {"what": "skipped", "values": {"probe": "sessions"}} in [
        {"what": u.what, "values": u.values} for u in data.unseen]
