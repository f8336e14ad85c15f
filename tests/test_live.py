"""The live view, root-free: it fits the terminal, shows rates and the clock,
never prints a process's name raw, and keeps its last frame."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import pytest

from nettrail.capture.live import LiveView, _summary, frame_lines, status_line
from nettrail.capture.probes.bandwidth import Conn
from nettrail.headline import Headline


def fake_capture(**extra: object) -> SimpleNamespace:
    return SimpleNamespace(
        headline=Headline(rx_bytes=10_000_000, tx_bytes=2_000_000, sessions=3, lookups=4),
        progress=SimpleNamespace(interval=2, seconds_left=1.0, lost={"bandwidth": 0}),
        opts=SimpleNamespace(interval_s=5.0, count=12, open_ended=False), intervals_done=1,
        interrupted=False,
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
        assert ":" in frame[0].split()[columns > 60]  # the clock, after "nettrail" if wide
        assert frame[0].endswith("lost 0  Ctrl-C ends early")
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


def test_interrupted_average_divides_by_the_real_elapsed_time() -> None:
    # Ctrl-C at 8.06 s of 5 s x 12: one interval done, but 8.06 s captured
    capture = fake_capture()
    capture.interrupted, capture.headline.elapsed_s = True, 8.06
    capture.headline.rx_bytes = 105_000_000 * 8.06 // 8
    assert "(105 Mbit/s average)" in _summary(capture)
    assert "interrupted after 1/12 intervals" in _summary(capture)


def test_status_line_keeps_lost_events_and_the_hint_at_80_columns() -> None:
    capture = fake_capture()
    capture.progress.lost = {"bandwidth": 12345, "dns": 7}
    capture.headline.lookups, capture.headline.failed_lookups = 123456, 99999
    for columns in (80, 60, 50, 40):
        line = status_line(capture, columns, 1767323045.0)
        assert len(line) <= columns and line.endswith("lost 12352  Ctrl-C ends early")
    wide = status_line(capture, 200, 1767323045.0)
    assert "sessions 3" in wide and "lookups 123456 (99999 failed)" in wide


class FakeBandwidth:
    running = True

    def __init__(self) -> None:
        self.conns: list[Conn] = []

    def peek(self) -> list[Conn]:
        return list(self.conns)


def test_the_last_rows_stay_until_others_move_bytes() -> None:
    # a new interval starts with nothing counted yet: the frame must not go blank
    bandwidth = FakeBandwidth()
    capture = fake_capture()
    capture.probes = {"bandwidth": bandwidth}
    out = io.StringIO()
    view = LiveView(out)
    frames = []
    for interval, moving in ((1, conns(2)), (2, []), (2, [c._replace(rx_bytes=0, tx_bytes=0)
                                                         for c in conns(2)]), (4, [])):
        bandwidth.conns = moving
        capture.progress.interval = interval
        view._next = 0.0
        out.truncate(0)
        view.tick(capture)
        frames.append(out.getvalue())
    assert all("1000" in frame and "1001" in frame for frame in frames)
    bandwidth.conns = [conns(3)[2]._replace(pid=2000)]  # others move bytes: they replace them
    view._next = 0.0
    out.truncate(0)
    view.tick(capture)
    assert "2000" in out.getvalue() and "1000" not in out.getvalue()


def test_keys_toggle_processes_and_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    read, write = os.pipe()
    bandwidth = FakeBandwidth()
    bandwidth.conns = [c._replace(pid=7, comm="curl", tx_bytes=1000 * n)
                       for n, c in enumerate(conns(3))]
    capture = fake_capture()
    capture.probes = {"bandwidth": bandwidth}
    out = io.StringIO()
    view = LiveView(out, keys=read)
    try:
        view.tick(capture)
        assert "p processes  s sort" in out.getvalue() and "LOCAL" in out.getvalue()
        os.write(write, b"p")
        view.tick(capture)  # a key redraws at once
        frame = out.getvalue().split("\x1b[J")[-1].splitlines()
        assert frame[1].split() == ["PID", "COMM", "CONNS", "*RX", "*TX"]
        assert frame[2].split()[:3] == ["7", "curl", "3"]
        os.write(write, b"ss")  # all -> rx -> tx
        view.tick(capture)
        assert view.sort == "tx" and out.getvalue().split("\x1b[J")[-1].splitlines()[1].split(
            )[-2:] == ["RX", "*TX"]
    finally:
        os.close(read)
        os.close(write)
