"""A steady workload for the baseline tests, run inside a network namespace
whose resolv.conf names 127.0.0.1 (this process answers DNS there):

  changecase.py baseline|incident LOG

The main process (comm nt-serve) answers DNS for every name with 127.0.0.1
after DNS_DELAY_S, and serves ports 9101, 9105 (and, in the incident, 9102),
reading each connection to EOF and closing it HOLD_S later (durations well
above the scheduling noise of a slow machine). Children, each on a schedule
of absolute deadlines (a late round does not shift the next), at rates low
enough for a machine emulated under qemu TCG to keep:
  nt-fetch   2.5/s getaddrinfo(api.nettrail.test) (enough lookups that one
             stalled does not make the window's 95th percentile), and in a
             second process 1/s connect 9101, send 20 kB; incident: a third
             1/s to 9102 (a new destination) and to 9104 (nothing listens:
             refused)
  nt-poll    1/s to 9101, 2 kB each; incident: 5/s
  nt-bulk    1/s to 9105 (served by nt-serve), 100 kB in 1000-byte segments
             (the test drops some of them in the incident: retransmissions)
The name answers in 10 ms, in the incident in 200 ms (20x). Every action is
appended to LOG as one line, "COMM WHAT START_S MS": WHAT is lookup:ok,
lookup:failed, PORT:ok or PORT:refused, START_S the wall clock it began at,
MS how long it took. That is the workload's own account, which the test
checks the report against. Prints "ready PID..." (every process) once all
listen; starts on SIGUSR1 (the window's start), runs until SIGTERM."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import struct
import sys
import threading
import time

MODE, LOG = sys.argv[1], sys.argv[2]
INCIDENT = MODE == "incident"
DNS_DELAY_S = 0.200 if INCIDENT else 0.010
HOLD_S = 0.050
NAME = "api.nettrail.test"
PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1
libc = ctypes.CDLL(None, use_errno=True)
log_fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def name_me(comm: str) -> None:
    libc.prctl(PR_SET_NAME, comm.encode(), 0, 0, 0)


def record(comm: str, what: str, started: float, began: float) -> None:
    """One line per action (one write to an O_APPEND file: lines never mix)."""
    ms = (time.monotonic() - began) * 1000
    os.write(log_fd, f"{comm} {what} {started:.6f} {ms:.3f}\n".encode())


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
            time.sleep(HOLD_S)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return listener


def send(comm: str, port: int, n_bytes: int, mss: int | None = None) -> None:
    started, began = time.time(), time.monotonic()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if mss:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.settimeout(10)
    outcome = "ok"
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"x" * n_bytes)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except ConnectionRefusedError:  # what the incident's 9104 is for
        outcome = "refused"
    except OSError:
        outcome = "failed"
    finally:
        sock.close()
    record(comm, f"{port}:{outcome}", started, began)


def lookup(comm: str) -> None:
    started, began = time.time(), time.monotonic()
    try:
        socket.getaddrinfo(NAME, 9101, socket.AF_INET, socket.SOCK_STREAM)
        outcome = "ok"
    except OSError:  # timed out: counted, and the schedule goes on
        outcome = "failed"
    record(comm, f"lookup:{outcome}", started, began)


def every(period_s: float, work) -> None:
    """`work` at absolute deadlines: a late round does not shift the next."""
    start = time.monotonic()
    n = 0
    while True:
        work()
        n += 1
        time.sleep(max(start + n * period_s - time.monotonic(), 0))


def fetch_more() -> None:
    send("nt-fetch", 9102, 20_000)
    send("nt-fetch", 9104, 0)


WORKERS = [
    ("nt-fetch", 0.4, lambda: lookup("nt-fetch")),
    ("nt-fetch", 1.0, lambda: send("nt-fetch", 9101, 20_000)),
    ("nt-poll", 0.2 if INCIDENT else 1.0, lambda: send("nt-poll", 9101, 2_000)),
    ("nt-bulk", 1.0, lambda: send("nt-bulk", 9105, 100_000, mss=1000)),
] + ([("nt-fetch", 1.0, fetch_more)] if INCIDENT else [])


def main() -> None:
    # before any thread: every thread and child inherits the mask, so these
    # signals wait for sigwait and never take their default action
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    name_me("nt-serve")
    threading.Thread(target=dns_server, daemon=True).start()
    listeners = [serve(9101), serve(9105)] + ([serve(9102)] if INCIDENT else [])
    pids = [os.getpid()]
    for comm, period, work in WORKERS:
        pid = os.fork()
        if pid == 0:
            name_me(comm)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # gone with nt-serve
            signal.sigwait({signal.SIGUSR1})
            every(period, work)
        pids.append(pid)
    print("ready", *pids, flush=True)
    # idle until SIGUSR1 (the capture's probes are attached, and loaded
    # without this workload taking the CPU), then on schedule until SIGTERM
    if signal.sigwait({signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}) == signal.SIGUSR1:
        for pid in pids[1:]:
            os.kill(pid, signal.SIGUSR1)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for pid in pids[1:]:
        os.kill(pid, signal.SIGKILL)
    del listeners


main()
