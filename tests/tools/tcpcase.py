"""TCP cases for the engine tests, each a process with known byte counts that
prints a line when it reaches a step (the test waits for those lines, never
for time) and, where told, waits for a line on stdin before the next step.

  sink --count C [--port P]      accept C connections, read each to EOF, close
                                 once our FIN is acked; prints the port, then
                                 the bytes read
  client --port P --send N [--wait] [--threads T]
                                 (T threads named pool-io-0.., each) connect,
                                 send N, close; --wait: print "ready PID" and
                                 wait for a line first; prints "done"
  fin-server --send N            accept one, send N, close at once; "closed"
  late-client --port P           connect, "connected", wait for a line (the
                                 server has closed by then), read to EOF,
                                 print the bytes read
  hold --before N --after M      a connection to itself: send N, "ready", wait,
                                 send M, "sent", wait, exit (still open)
  refused                        connect to a closed port: "refused"
  reset-server --send N          accept one, read 1 byte, send N, once acked
                                 close with RST (no FIN ever sent): "reset"
  timeout-client --port P        connect with a 1 s timeout to a port whose SYNs
                                 are dropped, close: "timed out"
  fin-storm --count C --send N   C connections to itself, one after another,
                                 each from its own 127.0.x.y (C <= 62,500):
                                 each end sends N, shuts down, reads to EOF;
                                 prints "ready PID", waits for a line, then
                                 prints "done"
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import select
import socket
import struct
import sys
import termios
import threading

PR_SET_NAME = 15
HOST = "127.0.0.1"


def say(line: str) -> None:
    print(line, flush=True)


def wait_for_go() -> None:
    sys.stdin.readline()


def read_to_eof(conn: socket.socket) -> int:
    total = 0
    while chunk := conn.recv(1 << 16):
        total += len(chunk)
    return total


def send_exactly(conn: socket.socket, n: int) -> None:
    conn.sendall(b"x" * n)


def wait_acked(conn: socket.socket) -> None:
    """Until the peer has acked all sent (and our FIN, if sent): TIOCOUTQ is
    write_seq - snd_una."""
    while fcntl.ioctl(conn, termios.TIOCOUTQ, b"\0\0\0\0") != b"\0\0\0\0":
        select.select([], [], [], 0.001)


def listener(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen()
    return sock


def sink(args: argparse.Namespace) -> None:
    with listener(args.port) as lsock:
        say(str(lsock.getsockname()[1]))
        total = 0
        for _ in range(args.count):
            conn, _ = lsock.accept()
            with conn:
                total += read_to_eof(conn)
                # our FIN acked before close(): the session has ended in TCP
                # (a lossy link may drop that ACK; an orphan left to close
                # after the capture would have no record)
                conn.shutdown(socket.SHUT_WR)
                wait_acked(conn)
    say(str(total))


def name_thread(name: str) -> None:
    """The kernel's name of the calling thread (what /proc/PID/task/TID/comm says)."""
    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def connect_send(port: int, n: int, thread_name: str | None = None) -> None:
    if thread_name:
        name_thread(thread_name)
    with socket.create_connection((HOST, port)) as conn:
        send_exactly(conn, n)
        conn.shutdown(socket.SHUT_WR)
        read_to_eof(conn)


def client(args: argparse.Namespace) -> None:
    if args.wait:
        say(f"ready {os.getpid()}")
        wait_for_go()
    if args.threads:
        workers = [threading.Thread(target=connect_send, args=(args.port, args.send,
                                                               f"pool-io-{i}"))
                   for i in range(args.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    else:
        connect_send(args.port, args.send)
    say("done")


def fin_server(args: argparse.Namespace) -> None:
    with listener() as lsock:
        say(str(lsock.getsockname()[1]))
        conn, _ = lsock.accept()
        send_exactly(conn, args.send)
        conn.close()
    say("closed")


def late_client(args: argparse.Namespace) -> None:
    conn = socket.socket()
    # room for the whole reply before reading: the server sends it all and closes
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    conn.connect((HOST, args.port))
    say("connected")
    wait_for_go()
    say(str(read_to_eof(conn)))
    conn.close()


def hold(args: argparse.Namespace) -> None:
    with listener() as lsock:
        a = socket.create_connection(lsock.getsockname())
        b, _ = lsock.accept()
    send_exactly(a, args.before)
    b.recv(args.before, socket.MSG_WAITALL)
    say(f"ready {a.getsockname()[1]} {b.getsockname()[1]}")
    wait_for_go()
    send_exactly(a, args.after)
    b.recv(args.after, socket.MSG_WAITALL)
    say("sent")
    wait_for_go()


def refused(args: argparse.Namespace) -> None:
    with listener() as lsock:
        port = lsock.getsockname()[1]
    try:
        socket.create_connection((HOST, port)).close()
    except ConnectionRefusedError:
        say(f"refused {port}")


def reset_server(args: argparse.Namespace) -> None:
    with listener() as lsock:
        say(str(lsock.getsockname()[1]))
        conn, _ = lsock.accept()
    conn.recv(1)
    send_exactly(conn, args.send)
    wait_acked(conn)  # snd_una is write_seq: old code took a FIN off
    # linger 0: close() aborts the connection with a RST
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    say("reset")


def reset_client(args: argparse.Namespace) -> None:
    with socket.create_connection((HOST, args.port)) as conn:
        conn.sendall(b"r")
        try:
            read_to_eof(conn)
        except ConnectionResetError:
            say("reset seen")


def timeout_client(args: argparse.Namespace) -> None:
    conn = socket.socket()
    conn.settimeout(1.0)
    try:
        conn.connect((HOST, args.port))
    except TimeoutError:
        say("timed out")
    conn.close()


def fin_storm(args: argparse.Namespace) -> None:
    say(f"ready {os.getpid()}")
    wait_for_go()
    with listener() as lsock:
        for i in range(args.count):
            # a source address each: no two connections share a 4-tuple, even
            # where the kernel reuses loopback ports in TIME_WAIT
            source = (f"127.0.{1 + i // 250}.{1 + i % 250}", 0)
            a = socket.create_connection(lsock.getsockname(), source_address=source)
            b, _ = lsock.accept()
            for end in (a, b):  # N fits the socket buffers: nothing blocks
                send_exactly(end, args.send)
                end.shutdown(socket.SHUT_WR)
            for end in (a, b):
                read_to_eof(end)
                # both FINs acked: the socket has closed in TCP before close()
                # (no orphan left to close after the capture has ended)
                wait_acked(end)
                end.close()
    say("done")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="case", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--port", type=int, default=0)
    s = sub.add_parser("client")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--send", type=int, required=True)
    s.add_argument("--wait", action="store_true")
    s.add_argument("--threads", type=int, default=0)
    s = sub.add_parser("fin-server")
    s.add_argument("--send", type=int, required=True)
    s = sub.add_parser("late-client")
    s.add_argument("--port", type=int, required=True)
    s = sub.add_parser("hold")
    s.add_argument("--before", type=int, required=True)
    s.add_argument("--after", type=int, required=True)
    sub.add_parser("refused")
    s = sub.add_parser("reset-server")
    s.add_argument("--send", type=int, required=True)
    s = sub.add_parser("reset-client")
    s.add_argument("--port", type=int, required=True)
    s = sub.add_parser("timeout-client")
    s.add_argument("--port", type=int, required=True)
    s = sub.add_parser("fin-storm")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--send", type=int, required=True)
    args = p.parse_args()
    {"sink": sink, "client": client, "fin-server": fin_server, "late-client": late_client,
     "hold": hold, "refused": refused, "reset-server": reset_server,
     "reset-client": reset_client, "timeout-client": timeout_client,
     "fin-storm": fin_storm}[args.case](args)


if __name__ == "__main__":
    main()
