"""Host-wide state under /run/nettrail: the lock that keeps two captures from
running at once, and the schedule service's pid file.

NETTRAIL_RUN_DIR moves it (the tests use their own)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from nettrail.errors import NettrailError, ServiceNotRunning


class CaptureBusy(NettrailError):
    """Another capture holds the host lock."""


def run_dir() -> Path:
    path = Path(os.environ.get("NETTRAIL_RUN_DIR", "/run/nettrail"))
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def capture_lock() -> Iterator[None]:
    """Hold the host's capture lock, or raise CaptureBusy at once."""
    path = run_dir() / "capture.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise CaptureBusy(f"another nettrail capture is running (pid {holder}, {path})",
                              "wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_file() -> Path:
    return run_dir() / "schedule.pid"


def service_pid() -> int:
    """The running schedule service's pid, or ServiceNotRunning."""
    path = pid_file()
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise ServiceNotRunning(f"no nettrail schedule service is running (no {path})",
                                "start one with `nettrail schedule`, or run `nettrail capture`"
                                ) from None
    if not _alive(pid):
        raise ServiceNotRunning(f"no nettrail schedule service is running (pid {pid} in "
                                f"{path} is gone)", "start one with `nettrail schedule`")
    return pid


@contextlib.contextmanager
def service_pid_file() -> Iterator[None]:
    """Announce this process as the schedule service while it runs."""
    with contextlib.suppress(ServiceNotRunning):
        pid = service_pid()
        raise NettrailError(f"a nettrail schedule service is already running (pid {pid})",
                            "stop it first, or use `nettrail trigger`")
    path = pid_file()
    path.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().split()[0] == str(os.getpid()):
                path.unlink()
