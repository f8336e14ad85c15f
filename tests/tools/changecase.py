"""A steady workload for the baseline tests, run inside a network namespace
whose resolv.conf names 127.0.0.1 (this process answers DNS there):

  changecase.py baseline|incident

The main process (comm nt-serve) answers DNS for every name with 127.0.0.1
after DNS_DELAY_S, and serves ports 9101 (and, in the incident, 9102 and
9105), reading each connection to EOF. Children, on a fixed schedule (light
enough for an emulated kernel to keep up):
  nt-fetch   5/s: getaddrinfo(api.nettrail.test), connect 9101, send 20 kB;
             incident: also 2.5/s to 9102 (a new destination) and 2.5/s to
             9104 (nothing listens: refused)
  nt-poll    2/s to 9101, 2 kB each; incident: 10/s (5x)
  nt-bulk    incident only: 1/s to 9105, 100 kB in 1000-byte segments (the
             test drops some of them: a new retransmitting path)
The name answers in 5 ms, in the incident in 60 ms. Prints "ready PID..."
(every process) once all listen, starts the children's work at a line on
stdin, then runs until SIGTERM."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import struct
import sys
import threading
import time

MODE = sys.argv[1]
INCIDENT = MODE == "incident"
DNS_DELAY_S = 0.060 if INCIDENT else 0.005
NAME = "api.nettrail.test"
PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1
libc = ctypes.CDLL(None, use_errno=True)


def name_me(comm: str) -> None:
    libc.prctl(PR_SET_NAME, comm.encode(), 0, 0, 0)


def dns_server() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def answer(packet: bytes, peer: tuple) -> None:
        time.sleep(DNS_DELAY_S)
        pos = 12
        while packet[pos]:
            pos += 1 + packet[pos]
        qtype = struct.unpack_from("!H", packet, pos + 1)[0]
        question = packet[12:pos + 5]
        records = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + socket.inet_aton(
            "127.0.0.1")) if qtype == 1 else b""
        header = packet[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if records else 0, 0, 0)
        sock.sendto(header + question + records, peer)

    while True:
        packet, peer = sock.recvfrom(2048)
        threading.Thread(target=answer, args=(packet, peer), daemon=True).start()


def serve(port: int) -> socket.socket:
    listener = socket.create_server(("127.0.0.1", port), backlog=512)

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                pass

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return listener


def send(port: int, n_bytes: int, mss: int | None = None) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if mss:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.settimeout(10)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"x" * n_bytes)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:  # refused: what the incident's 9104 is for
        pass
    finally:
        sock.close()


def every(period_s: float, work) -> None:
    """`work` on a fixed schedule (a late round does not shift the next)."""
    start = time.monotonic()
    n = 0
    while True:
        work(n)
        n += 1
        time.sleep(max(start + n * period_s - time.monotonic(), 0))


def fetch(n: int) -> None:
    socket.getaddrinfo(NAME, 9101, socket.AF_INET, socket.SOCK_STREAM)
    send(9101, 20_000)
    if INCIDENT and n % 2:
        send(9102, 20_000)
        send(9104, 0)


WORKERS = {
    "nt-fetch": (0.2, fetch),
    "nt-poll": (0.1 if INCIDENT else 0.5, lambda n: send(9101, 2_000)),
}
if INCIDENT:
    WORKERS["nt-bulk"] = (1.0, lambda n: send(9105, 100_000, mss=1000))


def main() -> None:
    name_me("nt-serve")
    threading.Thread(target=dns_server, daemon=True).start()
    listeners = [serve(9101)] + ([serve(9102), serve(9105)] if INCIDENT else [])
    pids = [os.getpid()]
    start_r, start_w = os.pipe()
    for comm, (period, work) in WORKERS.items():
        pid = os.fork()
        if pid == 0:
            name_me(comm)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # gone with nt-serve
            os.read(start_r, 1)
            every(period, work)
        pids.append(pid)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print("ready", *pids, flush=True)
    sys.stdin.readline()
    os.write(start_w, b"g" * len(WORKERS))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for pid in pids[1:]:
        os.kill(pid, signal.SIGKILL)
    del listeners


main()
