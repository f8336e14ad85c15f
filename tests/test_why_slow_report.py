"""What stands out names what the kernel counted per connection (root-free):
handshakes sent again, with both ends and the slowest wait, and a sender
stopped by the receiver's window, from records in the shape the probes write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.format import LOGS
from nettrail.report.aggregate import aggregate
from nettrail.report.build import write_report
from nettrail.report.reader import open_capture
from nettrail.report.render import say

FIXTURE = Path(__file__).parent / "data" / "capture_v2"
TS = 1767323049.0


def _line(base: dict, **fields: object) -> str:
    return json.dumps({**base, **fields})


def capture(tmp_path: Path) -> Path:
    """The v2 fixture plus one crowded server, its clients, and a sender to a
    reader that stopped."""
    target = tmp_path / "capture"
    shutil.copytree(FIXTURE, target)
    target.chmod(0o700)
    sessions = target / LOGS["sessions"].file
    session = json.loads(sessions.read_text().splitlines()[0])
    accepted = {**session, "pid": 900, "comm": "nginx", "side": "server", "laddr": "10.0.0.5",
                "lport": 9200, "raddr": "10.0.0.7", "srtt_us": None, "min_rtt_us": 210}
    extra = [_line(accepted, rport=50000 + i, syn_retrans_segs=1, connect_us=1_004_000 + i)
             for i in range(3)]
    extra.append(_line(accepted, rport=50009, syn_retrans_segs=2, connect_us=3_012_000))
    with sessions.open("a") as f:
        f.write("\n".join(extra) + "\n")
    bandwidth = target / LOGS["bandwidth"].file
    row = json.loads(bandwidth.read_text().splitlines()[0])
    stopped = {**row, "pid": 901, "comm": "backup", "raddr": "10.0.0.9", "rport": 873,
               "lport": 41999, "side": "client", "busy_us": 2_000_000,
               "rwnd_limited_us": 1_600_000, "sndbuf_limited_us": 0}
    with bandwidth.open("a") as f:
        f.write(_line(stopped) + "\n" + _line(stopped, interval=2) + "\n")
    return target


def test_handshake_retries_and_window_limits_stand_out(tmp_path: Path) -> None:
    data = aggregate([open_capture(capture(tmp_path))])
    said = {f.cause: say(f) for f in data.findings}
    assert said["handshake_retries"] == (
        "nginx (900) ← 10.0.0.7 port 9200: 5 SYN-ACKs sent again in handshakes, the slowest took "
        "3.01 s (a full accept queue drops the ACKs and SYNs it cannot take)")
    assert said["window_limited"] == (
        "backup (901) → 10.0.0.9:873: limited by the receiver's window 80% of the time it had data "
        "to send (3.20 s of 4.00 s): the other end reads slowly")


def test_the_page_says_them_under_what_stands_out(tmp_path: Path) -> None:
    page = write_report(capture(tmp_path)).read_text()
    standout = page[page.index('id="standout"'):page.index('id="timeline"')]
    assert "5 SYN-ACKs sent again in handshakes" in standout
    assert "limited by the receiver's window 80%" in standout


def test_captures_without_the_kernels_counts_say_nothing_of_them(tmp_path: Path) -> None:
    target = tmp_path / "plain"
    shutil.copytree(FIXTURE, target)
    causes = {f.cause for f in aggregate([open_capture(target)]).findings}
    assert not causes & {"handshake_retries", "window_limited"}


def health_capture(tmp_path: Path) -> Path:
    """The v2 fixture plus a listener that dropped, its waiting clients, a
    lossy path, a slow server and a slow path."""
    target = tmp_path / "health"
    shutil.copytree(FIXTURE, target)
    target.chmod(0o700)
    sessions = target / LOGS["sessions"].file
    base = json.loads(sessions.read_text().splitlines()[0])
    client = {**base, "side": "client", "retrans_segs": 0, "syn_retrans_segs": 0,
              "connect_us": 300, "srtt_us": 200, "min_rtt_us": 200}

    def session(pid: int, comm: str, raddr: str, rport: int, duration_ms: float,
                **fields: object) -> str:
        return _line(client, pid=pid, comm=comm, raddr=raddr, rport=rport,
                     lport=40000 + int(duration_ms), duration_ms=duration_ms,
                     opened_at=TS - duration_ms / 1000, **fields)

    extra = [session(902, "ab", "10.0.0.5", 9200, 1010.0, syn_retrans_segs=1,
                     connect_us=1_003_000 + i) for i in range(2)]
    extra += [session(904, "worker", "10.0.0.11", 8080, ms) for ms in (306, 305, 310, 900)]
    extra += [session(905, "sync", "10.0.0.12", 443, ms, srtt_us=150_000, min_rtt_us=150_000)
              for ms in (450, 460, 470)]
    with sessions.open("a") as f:
        f.write("\n".join(extra) + "\n")
    bandwidth = target / LOGS["bandwidth"].file
    row = json.loads(bandwidth.read_text().splitlines()[0])
    lossy = {**row, "pid": 903, "comm": "api", "raddr": "10.0.0.5", "rport": 9100,
             "lport": 41000, "side": "client", "retrans_segs": 200, "sent_segs": 2400}
    with bandwidth.open("a") as f:
        f.write(_line(lossy) + "\n" + _line(lossy, interval=2, retrans_segs=106,
                                            sent_segs=2000) + "\n")
    listener = {"kind": "listener", "ts": TS, "interval": 1, "interval_s": 2.0,
                **{k: base[k] for k in ("host", "nspid", "cgroup", "container", "unit")},
                "pid": 900, "comm": "nginx", "netns": 4026531840, "family": "ipv4",
                "laddr": "0.0.0.0", "lport": 9200, "ino": 88213, "accept_queue_conns": 2,
                "accept_limit_conns": 1, "syn_queue_conns": 0, "listen_drops": 70}
    (target / LOGS["listeners"].file).write_text(
        _line(listener) + "\n" + _line(listener, interval=2, accept_queue_conns=0,
                                       listen_drops=4) + "\n")
    return target


def test_listener_drops_lossy_paths_and_slow_servers_stand_out(tmp_path: Path) -> None:
    data = aggregate([open_capture(health_capture(tmp_path))])
    said = {f.cause: say(f) for f in data.findings}
    assert said["accept_queue_overflow"] == (
        "nginx (900) 0.0.0.0:9200 (netns 4026531840): accept queue of 1 full, 74 handshake "
        "drops (2 waiting at its fullest reading); 2 client sessions to that port, 2 "
        "handshake segments sent again, the slowest handshake took 1.00 s")
    assert said["lossy_path"] == (
        "api (903) → 10.0.0.5:9100: 306 of 4,400 segments resent (7%), RTT up to 900 µs: "
        "a lossy path")
    assert said["slow_server"] == (
        "worker (904) → 10.0.0.11:8080: p50 306.0 ms per session (p95 900.0 ms, max 900.0 ms, "
        "4 sessions) while the RTT is 200 µs: the server is slow")
    assert said["slow_path"] == (
        "sync (905) → 10.0.0.12:443: p50 460.0 ms per session (p95 470.0 ms, 3 sessions) "
        "with an RTT of 150.0 ms: round trips on a slow path")
    # the waiting clients' handshakes are theirs, not a slow server's
    assert "ab (902)" not in said["slow_server"]


def test_the_connections_table_has_each_groups_durations(tmp_path: Path) -> None:
    page = write_report(health_capture(tmp_path)).read_text()
    table = page[page.index('id="t-groups"'):]
    table = table[:table.index("</table>")]
    assert "duration p50" in table
    row = next(r for r in table.split("<tr>") if "worker (904)" in r)
    assert '<td class="n" data-v="306.0">306.0 ms</td><td class="n" data-v="900.0">900.0 ms' \
        '</td><td class="n" data-v="900.0">900.0 ms</td>' in row


def test_a_bad_listener_line_is_skipped_and_said(tmp_path: Path) -> None:
    target = health_capture(tmp_path)
    log = target / LOGS["listeners"].file
    first, second = log.read_text().splitlines()
    log.write_text(_line(json.loads(first), listen_drops=-1) + "\n" + second + "\n")
    data = aggregate([open_capture(target)])
    assert [x.listen_drops for x in data.listeners.rows] == [4]
    assert any(LOGS["listeners"].file in w and "line 1" in w for w in data.warnings), \
        data.warnings
