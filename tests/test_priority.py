"""The window runs at its nice value (issue 27: on a saturated host a
capture at the caller's priority fell behind and lost sessions), its
threads with it, and gives it back before the report is rendered; without
the right to raise its priority it keeps the caller's. Root-free parts run
unprivileged; raising the priority needs root."""

from __future__ import annotations

import os
import threading

import pytest

from nettrail.capture.window import priority

NOBODY = 65534


def nice_now() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_the_window_and_its_threads_run_at_its_nice_value() -> None:
    if os.geteuid() != 0:
        pytest.skip("raising a priority needs root")
    own, in_thread = nice_now(), []
    with priority(own - 5) as nice:
        thread = threading.Thread(target=lambda: in_thread.append(nice_now()))
        thread.start()
        thread.join()
        assert nice == nice_now() == own - 5
    assert in_thread == [own - 5]
    assert nice_now() == own


def test_without_the_right_to_raise_it_the_callers_is_kept() -> None:
    own = nice_now()
    child = os.fork()
    if child == 0:  # unprivileged: may not go below its nice value
        try:
            if os.geteuid() == 0:
                os.setresuid(NOBODY, NOBODY, NOBODY)
            with priority(own - 5) as nice:
                ok = nice == own == nice_now()
            os._exit(0 if ok and nice_now() == own else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
