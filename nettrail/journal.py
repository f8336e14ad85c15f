"""systemd's side of a service: a priority on each message, and readiness.

When stderr is the journal (JOURNAL_STREAM names its device and inode, see
systemd.exec(5)), each line starts with an sd-daemon `<N>` priority prefix
that journald strips and files as the priority; anywhere else lines are plain.
sd_notify is one datagram to NOTIFY_SOCKET (a path, or `@name` for the
abstract namespace); no library. Both variables come from the service
manager that started us: the environment of a root service is not another
user's to set."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TextIO

# syslog priorities (sd-daemon.h)
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6


def is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal stream systemd connected us to."""
    dev, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a file (a test's buffer)
        return False
    return dev.isdigit() and inode.isdigit() and (st.st_dev, st.st_ino) == (int(dev),
                                                                            int(inode))


def prefixed(line: str, priority: int, journal: bool) -> str:
    return f"<{priority}>{line}" if journal else line


def notify(state: str) -> bool:
    """Tell the service manager `state` (READY=1, STOPPING=1, STATUS=...);
    False when nobody listens (not under systemd, or Type= is not notify)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), address)
        return True
    return False
