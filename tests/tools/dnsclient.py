"""DNS lookups for tests, made when told: prints "ready", waits for a line on
stdin, then makes one lookup per argument and prints one line each, then
"done", and stays until stdin closes (so its files can still be read).

gai:NAME              getaddrinfo through libc (NAME passed as its UTF-8 bytes)
raw:LABEL/LABEL/...   one A query with exactly these labels (a label may hold
                      a dot) sent to 127.0.0.1:53 over UDP; waits for its answer"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys

ANSWER_TIMEOUT_S = 3.0
libc = ctypes.CDLL(None)
libc.getaddrinfo.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_void_p)]
libc.freeaddrinfo.argtypes = [ctypes.c_void_p]


def gai(name: str) -> str:
    result = ctypes.c_void_p()
    rc = libc.getaddrinfo(name.encode(), None, None, ctypes.byref(result))
    if rc == 0:
        libc.freeaddrinfo(result)
    return f"rc={rc}"


def raw(labels: list[str]) -> str:
    qname = b"".join(bytes([len(lb.encode())]) + lb.encode() for lb in labels) + b"\0"
    query_id = int.from_bytes(os.urandom(2), "big")
    packet = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(ANSWER_TIMEOUT_S)
        sock.sendto(packet, ("127.0.0.1", 53))
        reply = sock.recv(4096)
    return f"answered rcode={reply[3] & 0xF}"


def main() -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    for arg in sys.argv[1:]:
        kind, what = arg.split(":", 1)
        print(arg, gai(what) if kind == "gai" else raw(what.split("/")), flush=True)
    print("done", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
