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
