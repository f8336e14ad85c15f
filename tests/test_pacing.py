"""When the window's passes run (capture/pacing.py): root-free."""

from __future__ import annotations

from nettrail.capture.pacing import began_late, next_interval
from nettrail.report.header import warnings, header

S = 1_000_000_000


def test_a_pass_is_late_past_a_tenth_of_its_interval() -> None:
    assert [began_late(d, S) for d in (-5, 0, S // 10, S // 10 + 1)] == [
        False, False, False, True]


def test_intervals_whose_ends_went_by_during_a_pass_fold_into_the_next() -> None:
    # pass of interval 3 ended within interval 4: 4 is next
    assert next_interval(0, 3 * S + S // 2, S, 3, 12) == 4
    # it ran past the ends of 4 and 5: 6 (running now) is next
    assert next_interval(0, 5 * S + 1, S, 3, 12) == 6
    # past the window's end: the last interval, at once
    assert next_interval(0, 40 * S, S, 3, 12) == 12


def test_late_intervals_warned_on_the_page() -> None:
    meta = {"lost_events": {}, "probes": {}, "host": "h", "title": None, "note": None,
            "kernel": "6.1", "started_at": "2026-01-01T00:00:00Z", "ended_at": None,
            "interval_s": 1.0, "count": 12, "intervals_done": 12, "interrupted": False,
            "trigger": "manual", "filters": {"pids": []}, "version": "x", "format": "2",
            "intervals_late": 3}
    said = list(warnings(header(meta, None, None)))
    assert "3 of 12 intervals' passes ran late or were folded into the next" in said[1]
    assert not any("late" in w for w in warnings(header({**meta, "intervals_late": 0},
                                                          None, None)))
