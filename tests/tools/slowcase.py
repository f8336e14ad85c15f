"""Slow TCP cases for the why-slow tests, each a process that prints a line
when it reaches a step (the test waits for those lines) and, where told,
waits for a line on stdin before the next step. Times are measured here,
around the system calls, as an oracle independent of nettrail.

  crowd-server --backlog B      listen(B) on all addresses; print the port,
                                wait for a line, then accept C (the first
                                line's number), read each to EOF and close;
                                print "read", wait for a line, close the
                                listener; print "done"
  crowd --host H --port P --clients C
                                C threads connect at once; once all are
                                connected print one JSON object: local port ->
                                seconds connect() took; then all shut down and
                                read to EOF; print "done"
  stall-server --rcvbuf N       accept one with an N-byte receive buffer, print
                                the port; wait for a line; read to EOF: "read N"
  stall-client --port P --send N
                                connect, send N, print our port ("sent PORT"),
                                shut down, read to EOF; "done"
  syn-timeout --host H --port P connect with one SYN retry (TCP_SYNCNT 1) to a
                                port whose SYNs are dropped: "timed out SECONDS"
  slow-server --host H --delay-ms D --requests N
                                listen on H, print the port; N times: accept,
                                read a request, sleep D ms, answer and close;
                                print "done"
  slow-client --host H --port P --requests N
                                N requests one after another, a connection
                                each, closed with a linger: close() returns
                                once the server has acknowledged the FIN, so
                                the time spans the whole session; print one
                                JSON object: local port -> {"connect_s":
                                seconds connect() took, "session_s": seconds
                                from connect() to close() returning}
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

from tcpcase import read_to_eof, say, send_exactly, wait_for_go


def crowd_server(args: argparse.Namespace) -> None:
    with socket.socket() as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("0.0.0.0", 0))
        lsock.listen(args.backlog)
        say(str(lsock.getsockname()[1]))
        count = int(sys.stdin.readline())
        conns = [lsock.accept()[0] for _ in range(count)]
        for conn in conns:
            with conn:
                read_to_eof(conn)
        # the listener stays until told: its last drops are read while it exists
        say("read")
        wait_for_go()
    say("done")


def crowd(args: argparse.Namespace) -> None:
    took: dict[int, float] = {}
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def connect() -> None:
        sock = socket.socket()
        start = time.monotonic()
        sock.connect((args.host, args.port))
        with lock:
            took[sock.getsockname()[1]] = time.monotonic() - start
            socks.append(sock)

    threads = [threading.Thread(target=connect) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say(json.dumps(took))
    # all shut down first: the server reads them in its accept order, not ours
    for sock in socks:
        sock.shutdown(socket.SHUT_WR)
    for sock in socks:
        with sock:
            read_to_eof(sock)
    say("done")


def stall_server(args: argparse.Namespace) -> None:
    with socket.socket() as lsock:
        # set before listen(): the accepted socket inherits it (and its window)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        say(str(lsock.getsockname()[1]))
        conn, _ = lsock.accept()
        with conn:
            wait_for_go()
            say(f"read {read_to_eof(conn)}")


def stall_client(args: argparse.Namespace) -> None:
    with socket.create_connection(("127.0.0.1", args.port)) as conn:
        send_exactly(conn, args.send)
        say(f"sent {conn.getsockname()[1]}")
        conn.shutdown(socket.SHUT_WR)
        read_to_eof(conn)
    say("done")


def syn_timeout(args: argparse.Namespace) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        start = time.monotonic()
        try:
            sock.connect((args.host, args.port))
        except TimeoutError:
            say(f"timed out {time.monotonic() - start:.6f}")


REQUEST, ANSWER = b"GET\n", b"OK\n"
LINGER = struct.pack("ii", 1, 60)  # SO_LINGER on, up to 60 s


def slow_server(args: argparse.Namespace) -> None:
    with socket.socket() as lsock:
        lsock.bind((args.host, 0))
        lsock.listen()
        say(str(lsock.getsockname()[1]))
        for _ in range(args.requests):
            conn, _ = lsock.accept()
            with conn:
                conn.recv(len(REQUEST))
                time.sleep(args.delay_ms / 1000)
                conn.sendall(ANSWER)
    say("done")


def slow_client(args: argparse.Namespace) -> None:
    took = {}
    for _ in range(args.requests):
        start = time.monotonic()
        with socket.create_connection((args.host, args.port)) as conn:
            connected, port = time.monotonic(), conn.getsockname()[1]
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER)
            conn.sendall(REQUEST)
            read_to_eof(conn)
        took[port] = {"connect_s": connected - start, "session_s": time.monotonic() - start}
    say(json.dumps(took))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="case", required=True)
    s = sub.add_parser("crowd-server")
    s.add_argument("--backlog", type=int, required=True)
    s = sub.add_parser("crowd")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--clients", type=int, required=True)
    s = sub.add_parser("stall-server")
    s.add_argument("--rcvbuf", type=int, required=True)
    s = sub.add_parser("stall-client")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--send", type=int, required=True)
    s = sub.add_parser("syn-timeout")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s = sub.add_parser("slow-server")
    s.add_argument("--host", required=True)
    s.add_argument("--delay-ms", type=int, required=True)
    s.add_argument("--requests", type=int, required=True)
    s = sub.add_parser("slow-client")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--requests", type=int, required=True)
    args = p.parse_args()
    {"crowd-server": crowd_server, "crowd": crowd, "stall-server": stall_server,
     "stall-client": stall_client, "syn-timeout": syn_timeout, "slow-server": slow_server,
     "slow-client": slow_client}[args.case](args)


if __name__ == "__main__":
    main()
