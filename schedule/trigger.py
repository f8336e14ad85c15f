"""`nettrail trigger` and the service, over a unix socket in the run directory.

The trigger asks for a capture and reads the service's answers, one line
each: `started DIR`, then `written DIR: numbers` or `failed REASON`; or at
once `skipped REASON` when another capture holds the host lock. Both ends
check the other's uid (SO_PEERCRED): only root or the service's own user
may ask, and the trigger believes only a socket served by them. No pid is
read from a file and no signal is sent, so a stale pid file cannot make the
trigger hit another process."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator

from nettrail.errors import NettrailError, PrivilegeError, ServiceNotRunning
from nettrail.hostlock import open_run_dir, run_dir
from nettrail.units import printable

SOCKET = "schedule.sock"
REQUEST = b"trigger\n"
REQUEST_TIMEOUT_S = 5.0
FINAL = ("written", "failed", "skipped")
Reply = Callable[[str], None]


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _address(dir_fd: int) -> str:
    """Reach the socket through the directory fd: short (sun_path holds 108
    bytes) and never through a path someone could swap."""
    return f"/proc/self/fd/{dir_fd}/{SOCKET}"


class TriggerListener:
    """The service's end: each trusted `trigger` request becomes a call to
    `on_trigger(reply)`; `reply(line)` answers that client."""

    def __init__(self, on_trigger: Callable[[Reply], None]) -> None:
        self.on_trigger = on_trigger
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with open_run_dir() as run:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SOCKET, dir_fd=run.fd)  # a killed service's: we hold the pid lock
            self.sock.bind(_address(run.fd))
            os.chmod(SOCKET, 0o600, dir_fd=run.fd)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, name="trigger", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the service is stopping
                return
            if not self._answer(conn):
                conn.close()

    def _answer(self, conn: socket.socket) -> bool:
        """True when the request was taken (its reply closes the connection)."""
        if not _trusted(_peer_uid(conn)):
            return False
        conn.settimeout(REQUEST_TIMEOUT_S)
        try:
            if conn.recv(len(REQUEST), socket.MSG_WAITALL) != REQUEST:
                return False
        except OSError:
            return False
        self.on_trigger(_replier(conn))
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.sock.close()
        with contextlib.suppress(OSError), open_run_dir() as run:
            os.unlink(SOCKET, dir_fd=run.fd)


def _replier(conn: socket.socket) -> Reply:
    def reply(line: str) -> None:
        with contextlib.suppress(OSError):  # the client left (Ctrl-C): the capture goes on
            conn.sendall((printable(line) + "\n").encode())
        if line.startswith(FINAL):
            conn.close()
    return reply


def _connect() -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        dir_fd = os.open(run_dir(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            conn.connect(_address(dir_fd))
        finally:
            os.close(dir_fd)
    except PermissionError:
        conn.close()
        raise PrivilegeError(f"cannot reach the schedule service in {run_dir()}: permission "
                             "denied", "run it with sudo") from None
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        raise ServiceNotRunning(f"no nettrail schedule service is running (nothing answers "
                                f"on {run_dir() / SOCKET})",
                                "start one with `nettrail schedule`, or run `nettrail capture`"
                                ) from None
    return conn


def ask_for_capture() -> Iterator[str]:
    """Ask the service for a capture now (errors at once if nobody can be
    asked); the service's answers follow, one line each, as they come."""
    conn = _connect()
    uid = _peer_uid(conn)
    if not _trusted(uid):
        conn.close()
        raise NettrailError(f"{run_dir() / SOCKET} is served by uid {uid}, not by root",
                            "stop that process; it is not nettrail's")
    conn.sendall(REQUEST)
    return _answers(conn)


def _answers(conn: socket.socket) -> Iterator[str]:
    with conn:
        for line in conn.makefile("r", encoding="utf-8", errors="replace"):
            yield printable(line.rstrip("\n"))
