"""UDP cases for the udp probe's tests, each a process with known counts that
prints a line when it reaches a step (the test waits for those lines).

  serve --port P [--rcvbuf N] [--no-read]
      bind 0.0.0.0:P (SO_RCVBUFFORCE N if given), print "ready PID"; read
      every datagram (--no-read: none) until a line on stdin, then read what
      is queued and print "got DATAGRAMS BYTES"; it never sends
  send --host H --port P --count C --size S
      one socket, C datagrams of S bytes to H:P, paced so that no queue on
      the way drops; print "sent PID LPORT DATAGRAMS BYTES" (from sendto's
      return values)
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import time

SO_RCVBUFFORCE = 33  # asm-generic/socket.h (root: past net.core.rmem_max)
BURST = 20  # datagrams sent before a pause: below any queue on a veth pair
PAUSE_S = 0.001


def serve(port: int, rcvbuf: int | None, read: bool) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    s.bind(("0.0.0.0", port))
    print(f"ready {os.getpid()}", flush=True)
    datagrams = size = 0
    watched = [s, sys.stdin] if read else [sys.stdin]
    while True:
        ready, _, _ = select.select(watched, [], [])
        if sys.stdin in ready:
            break
        size += len(s.recv(65536))
        datagrams += 1
    s.setblocking(False)
    while True:
        try:
            size += len(s.recv(65536))
        except BlockingIOError:
            break
        datagrams += 1
    print(f"got {datagrams} {size}", flush=True)


def send(host: str, port: int, count: int, size: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"u" * size
    sent = 0
    for i in range(count):
        sent += s.sendto(payload, (host, port))
        if i % BURST == BURST - 1:
            time.sleep(PAUSE_S)
    print(f"sent {os.getpid()} {s.getsockname()[1]} {count} {sent}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="case", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--rcvbuf", type=int)
    sv.add_argument("--no-read", action="store_true")
    sd = sub.add_parser("send")
    sd.add_argument("--host", required=True)
    sd.add_argument("--port", type=int, required=True)
    sd.add_argument("--count", type=int, required=True)
    sd.add_argument("--size", type=int, required=True)
    a = p.parse_args()
    if a.case == "serve":
        serve(a.port, a.rcvbuf, not a.no_read)
    else:
        send(a.host, a.port, a.count, a.size)


if __name__ == "__main__":
    main()
