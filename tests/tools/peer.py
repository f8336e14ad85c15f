"""One end of a TCP transfer with known byte counts (a separate process, so
the test knows which pid owns which end).

server: listen (on --port, default any free one), print the port, accept, read --expect bytes, send --send
bytes, wait for the client to close, close.  client: (with --wait, print
"waiting" and read a line from stdin first) connect, send --send bytes, read --expect bytes, close.
--address: listen on / connect to this address (default: loopback)."""

from __future__ import annotations

import argparse
import socket
import sys


def read_exactly(conn: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = conn.recv(min(65536, n - got))
        if not chunk:
            raise SystemExit(f"peer closed after {got} of {n} bytes")
        got += len(chunk)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--family", type=int, choices=[4, 6], default=4)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--address")
    p.add_argument("--wait", action="store_true")
    args = p.parse_args()
    family, host = ((socket.AF_INET, "127.0.0.1") if args.family == 4
                    else (socket.AF_INET6, "::1"))
    host = args.address or host
    if args.role == "server":
        listener = socket.socket(family)
        listener.bind((host, args.port))
        listener.listen()
        print(listener.getsockname()[1], flush=True)
        conn, _ = listener.accept()
        read_exactly(conn, args.expect)
        conn.sendall(b"s" * args.send)
        conn.recv(1)  # the client's FIN: passive close
        conn.close()
    else:
        if args.wait:
            print("waiting", flush=True)
            sys.stdin.readline()
        conn = socket.socket(family)
        conn.connect((host, args.port))
        conn.sendall(b"c" * args.send)
        read_exactly(conn, args.expect)
        conn.close()


if __name__ == "__main__":
    main()
