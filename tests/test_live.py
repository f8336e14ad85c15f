"""The live view, root-free: it fits the terminal, shows rates and the clock,
never prints a process's name raw, and keeps its last frame."""

from __future__ import annotations

import io
from types import SimpleNamespace

from nettrail.capture.live import LiveView, _summary, frame_lines
from nettrail.capture.probes.bandwidth import Conn
from nettrail.headline import Headline


def fake_capture(**extra: object) -> SimpleNamespace:
    return SimpleNamespace(
        headline=Headline(rx_bytes=10_000_000, tx_bytes=2_000_000, sessions=3, lookups=4),
        progress=SimpleNamespace(interval=2, seconds_left=1.0, lost={"bandwidth": 0}),
        opts=SimpleNamespace(interval_s=5.0, count=12), intervals_done=1, interrupted=False,
        probes={}, report_path=None, report_error=None, **extra)


def conns(n: int) -> list[Conn]:
    return [Conn(pid=1000 + i, comm="evil\x1b[2J\u202ename", netns=4026531840, family=2,
                 laddr="10.0.0.1", lport=40000 + i,
                 raddr="2001:db8:1234:5678:9abc:def0:1234:5678", rport=443, side=1,
                 rx_bytes=500_000 * (n - i), tx_bytes=4_000, retrans_bytes=0, srtt_us=100,
                 cgroup_id=0, nspid=0)
            for i in range(n)]


def test_frame_fits_the_terminal_and_shows_rates_and_clock() -> None:
    for columns, lines in ((80, 24), (132, 50), (50, 10)):
        frame = frame_lines(fake_capture(), conns(60), columns, lines, 1767323045.0)
        assert len(frame) < lines and all(len(line) <= columns for line in frame)
        assert ":" in frame[0].split()[1]  # the clock after "nettrail"
    frame = frame_lines(fake_capture(), conns(3), 100, 24, 1767323045.0)
    # 1,500,000 bytes over the 4 s of the interval so far: 3 Mbit/s
    assert "3 Mbit/s" in frame[2] and "8 kbit/s" in frame[2]
    assert "\x1b" not in "".join(frame) and "\u202e" not in "".join(frame)
    assert "LOCAL" in frame[1]
    assert "LOCAL" not in frame_lines(fake_capture(), conns(3), 50, 24, 0.0)[1]


def test_last_frame_stays_and_rendering_is_said() -> None:
    out = io.StringIO()
    view = LiveView(out)
    view._draw(["frame one", "x"])
    view._draw(["frame two", "y"])
    view.rendering(fake_capture())
    view.end(fake_capture())
    text = out.getvalue()
    assert "\x1b[2F\x1b[J" in text  # the second frame replaced the first in place
    assert text.endswith("frame two\ny\nnettrail: rendering report…\n" + _summary(
        fake_capture()) + "\n")
    assert "(16 Mbit/s average)" in _summary(fake_capture())
