"""Workload roles for samples/make_sample.py (stdlib only; each role runs as its
own process, under a name of its own)."""

from __future__ import annotations

import socket
import sys
import time

BULK_BYTES = 48 * 1024 * 1024
UPLOAD_BYTES = 16 * 1024 * 1024
CHUNK = 64 * 1024


def serve(address: str) -> None:
    """Server host: port 8080 sends BULK_BYTES, 9090 takes an upload, 7070 echoes once."""
    import threading

    def listener(port: int, handle) -> None:
        srv = socket.create_server((address, port), backlog=512, reuse_port=True)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def bulk(conn: socket.socket) -> None:
        conn.recv(100)
        for _ in range(BULK_BYTES // CHUNK):
            conn.sendall(b"d" * CHUNK)
            time.sleep(0.004)
        conn.close()

    def upload(conn: socket.socket) -> None:
        while conn.recv(CHUNK):
            pass
        conn.sendall(b"stored\n")
        conn.close()

    def echo(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100))
        conn.close()

    for port, handle in ((8080, bulk), (9090, upload), (7070, echo)):
        threading.Thread(target=listener, args=(port, handle), daemon=True).start()
    print("ready", flush=True)
    time.sleep(3600)


def resolve(name: str) -> str:
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
    except socket.gaierror:
        return ""


def download(name: str) -> None:
    conn = socket.create_connection((resolve(name), 8080))
    conn.sendall(b"GET /backup.tar\n")
    while conn.recv(CHUNK):
        pass
    conn.close()


def upload(name: str) -> None:
    conn = socket.create_connection((resolve(name), 9090))
    for _ in range(UPLOAD_BYTES // CHUNK):
        conn.sendall(b"u" * CHUNK)
        time.sleep(0.002)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(100)
    conn.close()


def burst(name: str, count: str) -> None:
    address = resolve(name)
    for _ in range(int(count)):
        conn = socket.create_connection((address, 7070))
        conn.sendall(b"ping")
        conn.recv(100)
        conn.close()


def lookups(*names: str) -> None:
    for name in names:
        resolve(name)
        time.sleep(0.2)


if __name__ == "__main__":
    {"serve": serve, "download": download, "upload": upload, "burst": burst,
     "lookups": lookups}[sys.argv[1]](*sys.argv[2:])
