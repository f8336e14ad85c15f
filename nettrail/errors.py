"""nettrail's exception tree and exit statuses.

capture/, report/ and schedule/ raise these; the CLI turns any of them into
one line and its exit status (README, "Exit status").
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NO_PRIVILEGE = 3
    UNSUPPORTED = 4
    BAD_CAPTURE = 5
    NOT_RUNNING = 6
    BUSY = 7          # another capture holds the host lock (also: a trigger was skipped)
    INTERRUPTED = 130  # Ctrl-C outside a capture window (128 + SIGINT, as shells do)


class NettrailError(Exception):
    """A problem the user can fix: `problem` says what, `fix` says how."""

    status = ExitStatus.ERROR

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.problem}: {self.fix}" if self.fix else self.problem


class UsageError(NettrailError):
    status = ExitStatus.USAGE


class BadCapture(NettrailError):
    """A capture directory report/ cannot read at all."""

    status = ExitStatus.BAD_CAPTURE


class PrivilegeError(NettrailError):
    status = ExitStatus.NO_PRIVILEGE


class UnsupportedSystem(NettrailError):
    """The kernel or libraries cannot run the probes."""

    status = ExitStatus.UNSUPPORTED


class ProbeError(NettrailError):
    """One probe could not load or attach; the others may still run."""


class OutputError(NettrailError):
    """Logs or report could not be written (disk full, permissions)."""


class Cancelled(NettrailError):
    """Work given up because nettrail is stopping (what was captured stays)."""

    status = ExitStatus.INTERRUPTED


class ServiceNotRunning(NettrailError):
    status = ExitStatus.NOT_RUNNING


class CaptureBusy(NettrailError):
    """Another capture holds the host lock."""

    status = ExitStatus.BUSY
