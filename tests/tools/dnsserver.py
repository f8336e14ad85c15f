"""A tiny DNS server for tests, on ADDRESS:53 (default 127.0.0.1) inside its
network namespace.

slow.*   -> answered after 300 ms      missing.* -> NXDOMAIN
hang.*   -> never answered             anything else -> answered at once
A queries get ANSWER (default 127.0.0.42); other types an empty answer.
Usage: dnsserver.py [ADDRESS [ANSWER]]. Prints "ready"."""

from __future__ import annotations

import socket
import struct
import sys
import threading

SLOW_S = 0.3
ANSWER = socket.inet_aton(sys.argv[2] if len(sys.argv) > 2 else "127.0.0.42")


def parse_question(packet: bytes) -> tuple[str, int, int]:
    """Name, type, and the offset just past the question."""
    labels, pos = [], 12
    while packet[pos]:
        length = packet[pos]
        labels.append(packet[pos + 1:pos + 1 + length].decode())
        pos += 1 + length
    qtype = struct.unpack_from("!H", packet, pos + 1)[0]
    return ".".join(labels), qtype, pos + 5


def answer(packet: bytes) -> tuple[bytes | None, float]:
    name, qtype, end = parse_question(packet)
    first = name.split(".")[0]
    if first == "hang":
        return None, 0.0
    rcode = 3 if first == "missing" else 0
    answers = b""
    if rcode == 0 and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + ANSWER
    header = packet[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
    return header + packet[12:end] + answers, SLOW_S if first == "slow" else 0.0


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1", 53))
    print("ready", flush=True)
    while True:
        packet, client = sock.recvfrom(4096)
        reply, delay = answer(packet)
        if reply is not None:
            threading.Timer(delay, sock.sendto, (reply, client)).start()


if __name__ == "__main__":
    main()
