"""Host-wide state under /run/nettrail: the lock that keeps two captures from
running at once, and the schedule service's pid file.

Both are flock()ed by the process they name, for as long as it runs: the
kernel drops a lock when its holder dies, so a file left by a killed process
is stale by definition and simply taken over. Nothing here trusts a pid read
from a file; `nettrail trigger` talks to the service over its socket
(schedule/trigger.py) and signals nobody.

NETTRAIL_RUN_DIR moves it (the tests use their own)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from nettrail.errors import CaptureBusy, ExitStatus, NettrailError
from nettrail.files import FILE_MODE, OutputDir

LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
FIX = "NETTRAIL_RUN_DIR (default /run/nettrail) must be root's own directory"


class ServiceRunning(NettrailError):
    status = ExitStatus.BUSY


def run_dir() -> Path:
    return Path(os.environ.get("NETTRAIL_RUN_DIR", "/run/nettrail"))


def open_run_dir() -> OutputDir:
    """The run directory, created 0700 or checked: nobody else may plant files in it."""
    return OutputDir.private(run_dir(), empty=False, fix=FIX)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote, for messages only (never signalled)."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "?"


@contextlib.contextmanager
def _locked_file(name: str, busy: type[NettrailError], problem: str,
                 fix: str) -> Iterator[int]:
    """Hold an exclusive flock on run_dir/name with this pid written in it;
    emptied again on the way out, so it never names a process that is gone."""
    with open_run_dir() as run:
        fd = os.open(name, LOCK_FLAGS, FILE_MODE, dir_fd=run.fd)
    try:
        if not _try_lock(fd):
            raise busy(f"{problem} (pid {_holder(fd)}, {run_dir() / name})", fix)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield fd
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


@contextlib.contextmanager
def capture_lock() -> Iterator[None]:
    """Hold the host's capture lock, or raise CaptureBusy at once."""
    with _locked_file("capture.lock", CaptureBusy, "another nettrail capture is running",
                      "wait for it to finish"):
        yield


PID_FILE = "schedule.pid"


@contextlib.contextmanager
def service_pid_file() -> Iterator[None]:
    """Announce this process as the schedule service while it runs. A pid
    file left by a killed service is not locked: it is taken over. (It is
    for people; `nettrail trigger` uses the service's socket, not the pid.)"""
    with _locked_file(PID_FILE, ServiceRunning, "a nettrail schedule service is already "
                      "running", "stop it first, or use `nettrail trigger`"):
        yield
