"""What libbpf prints: kept for --debug, and each verifier refusal in it
(the reason a load failed)."""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from ctypes import CFUNCTYPE, c_char_p, c_int, c_size_t, c_void_p

LOG_LINES = 2000

# Everything libbpf said, for --debug.
log: deque[str] = deque(maxlen=LOG_LINES)
# Why the verifier refused programs since the last load began (BpfObject.load)
refusals: list[str] = []

PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
# A verifier's log comes in one message: room for its end (where it says
# why), allocated once (libbpf prints a line per relocation at load)
_print_buf = ctypes.create_string_buffer(1 << 20)
_print_lock = threading.Lock()  # the drainer thread's calls may print too

# The statistics a verifier's log ends with (after why it refused)
_VERIFIER_STATS = ("processed ", "verification time", "stack depth", "-- END PROG LOAD LOG")


def verifier_refusal(lines: list[str]) -> str | None:
    """Why the verifier refused a program, from the log of its load: the
    last line of its log before the statistics it ends with."""
    end = max((i for i, line in enumerate(lines) if line.startswith("-- END PROG LOAD LOG")),
              default=None)
    for line in reversed(lines[:end] if end is not None else ()):
        if not line.startswith(_VERIFIER_STATS):
            return line
    return None


@PRINT_FN
def on_libbpf_print(level: int, fmt: bytes, args: int) -> int:
    with _print_lock:
        _libc.vsnprintf(_print_buf, len(_print_buf), fmt, args)
        text = _print_buf.value.decode(errors="replace")
    lines = text.rstrip("\n").split("\n")[-LOG_LINES:]
    log.extend(lines)
    if (why := verifier_refusal(lines)) is not None:
        refusals.append(why)
    return 0
