"""Loopback session churn between two processes whose pids the test knows,
for owner tests: every session moves bytes both ways.

  serve                        listens twice: prints "ports P Q PID"; on P,
                               per connection, reads a mode byte: "c" send
                               1 byte and close first; "r" send 1 byte, read
                               until the client's reset, close. On a line
                               "accept" on stdin: accepts the connections
                               queued on Q (reset while they waited), reads
                               what they sent, closes; prints "served K"
  connect --port P --queued Q --count N --reset-queued K [--round R]
                               prints "ready PID", waits for a line, then N
                               sessions to P (modes alternating, "r" ones end
                               with RST), then K to Q that send 50 bytes and
                               reset before they are accepted; prints "done".
                               --round: after every R sessions to P, prints
                               "round" and waits for a line
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import threading

HOST = "127.0.0.1"
QUEUED_BYTES = 50
RESET_BYTES = 100
LINGER_NONE = struct.pack("ii", 1, 0)  # close() sends RST


def say(line: str) -> None:
    print(line, flush=True)


def drain(conn: socket.socket) -> None:
    try:
        while conn.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass


def handle(conn: socket.socket) -> None:
    with conn:
        mode = conn.recv(1)
        if mode == b"r":
            conn.recv(RESET_BYTES, socket.MSG_WAITALL)
        conn.sendall(b"x")
        if mode == b"r":
            drain(conn)


def serve(_args: argparse.Namespace) -> None:
    main, queued = socket.create_server((HOST, 0)), socket.create_server((HOST, 0), backlog=128)
    say(f"ports {main.getsockname()[1]} {queued.getsockname()[1]} {os.getpid()}")

    def accept_forever() -> None:
        while True:
            handle(main.accept()[0])

    threading.Thread(target=accept_forever, daemon=True).start()
    for line in sys.stdin:
        if line.strip() != "accept":
            return
        queued.setblocking(False)
        served = 0
        while True:
            try:
                conn, _ = queued.accept()
            except BlockingIOError:
                break
            with conn:
                drain(conn)
            served += 1
        queued.setblocking(True)
        say(f"served {served}")


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_NONE)
    conn.close()


def connect(args: argparse.Namespace) -> None:
    say(f"ready {os.getpid()}")
    sys.stdin.readline()
    for i in range(args.count):
        if args.round and i and i % args.round == 0:
            say("round")
            sys.stdin.readline()
        conn = socket.create_connection((HOST, args.port))
        if i % 2:
            conn.sendall(b"r" * (RESET_BYTES + 1))
            conn.recv(1)
            reset(conn)
        else:
            conn.sendall(b"c")
            drain(conn)
            conn.close()
    for _ in range(args.reset_queued):
        conn = socket.create_connection((HOST, args.queued))
        conn.sendall(b"q" * QUEUED_BYTES)
        reset(conn)
    say("done")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="case", required=True)
    sub.add_parser("serve")
    c = sub.add_parser("connect")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--queued", type=int, required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--reset-queued", type=int, required=True)
    c.add_argument("--round", type=int, default=0)
    args = parser.parse_args()
    {"serve": serve, "connect": connect}[args.case](args)


if __name__ == "__main__":
    main()
