"""Name lookups through libc, one per argument, each as FUNCTION:NAME
(getaddrinfo, gethostbyname, gethostbyname_r): prints one line per lookup."""

from __future__ import annotations

import ctypes
import socket
import sys

libc = ctypes.CDLL(None)
libc.gethostbyname.restype = ctypes.c_void_p
libc.gethostbyname.argtypes = [ctypes.c_char_p]


def lookup(function: str, name: str) -> str:
    if function == "getaddrinfo":
        try:
            return str(sorted({ai[4][0] for ai in socket.getaddrinfo(name, None)}))
        except socket.gaierror as exc:
            return f"error {exc.errno}"
    if function == "gethostbyname":
        return "ok" if libc.gethostbyname(name.encode()) else "error"
    buf = ctypes.create_string_buffer(8192)
    hostent, result, h_errno = (ctypes.create_string_buffer(64), ctypes.c_void_p(),
                                ctypes.c_int())
    rc = libc.gethostbyname_r(name.encode(), hostent, buf, len(buf), ctypes.byref(result),
                              ctypes.byref(h_errno))
    return "ok" if rc == 0 and result.value else f"error h_errno={h_errno.value}"


for arg in sys.argv[1:]:
    function, name = arg.split(":", 1)
    print(function, name, lookup(function, name), flush=True)
