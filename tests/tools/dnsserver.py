"""A tiny DNS server for tests, on ADDRESS:53 (default 127.0.0.1) inside its
network namespace, over UDP and TCP.

slow.*     -> answered after 300 ms      missing.*  -> NXDOMAIN
servfail.* -> SERVFAIL                   hang.*     -> never answered
*.nx       -> NXDOMAIN after 50 ms (a search domain that does not know the name)
foreign.*  -> also an A record FOREIGN for another name (`<img src=x>`), first
cname.*    -> a CNAME to target.nettrail.test, then target's A record
anything else -> answered at once
A queries get ANSWER (default 127.0.0.42); other types an empty answer.
Usage: dnsserver.py [ADDRESS [ANSWER]]. Prints "ready"."""

from __future__ import annotations

import socket
import struct
import sys
import threading

SLOW_S = 0.3
ANSWER = socket.inet_aton(sys.argv[2] if len(sys.argv) > 2 else "127.0.0.42")
FOREIGN = socket.inet_aton("127.0.0.66")
FOREIGN_OWNER = b"\x0b<img src=x>\x00"
CNAME_TARGET = b"\x06target\x08nettrail\x04test\x00"
NX_S = 0.05
RCODES = {"missing": 3, "servfail": 2}
NXDOMAIN = 3
NOERROR = 0
TYPE_A, TYPE_CNAME = 1, 5


def parse_question(packet: bytes) -> tuple[str, int, int]:
    """Name, type, and the offset just past the question."""
    labels, pos = [], 12
    while packet[pos]:
        length = packet[pos]
        labels.append(packet[pos + 1:pos + 1 + length].decode("utf-8", "replace"))
        pos += 1 + length
    qtype = struct.unpack_from("!H", packet, pos + 1)[0]
    return ".".join(labels), qtype, pos + 5


def answer(packet: bytes) -> tuple[bytes | None, float]:
    name, qtype, end = parse_question(packet)
    first = name.split(".")[0]
    if first == "hang":
        return None, 0.0
    last = name.split(".")[-1]
    rcode = NXDOMAIN if last == "nx" else RCODES.get(first, NOERROR)
    records = []
    if rcode == NOERROR and qtype == TYPE_A:
        a_record = struct.pack("!HHIH", TYPE_A, 1, 0, 4) + ANSWER
        if first == "foreign":
            records.append(FOREIGN_OWNER + struct.pack("!HHIH", TYPE_A, 1, 0, 4) + FOREIGN)
        if first == "cname":
            records.append(b"\xc0\x0c" + struct.pack("!HHIH", TYPE_CNAME, 1, 0,
                                                     len(CNAME_TARGET)) + CNAME_TARGET)
            records.append(CNAME_TARGET + a_record)
        else:
            records.append(b"\xc0\x0c" + a_record)
    header = packet[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, len(records), 0, 0)
    delay = SLOW_S if first == "slow" else NX_S if last == "nx" else 0.0
    return header + packet[12:end] + b"".join(records), delay


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def serve_tcp_client(conn: socket.socket) -> None:
    """Length-prefixed messages until the client closes."""
    with conn:
        try:
            while True:
                length = struct.unpack("!H", recv_exactly(conn, 2))[0]
                reply, delay = answer(recv_exactly(conn, length))
                if reply is not None:
                    threading.Event().wait(delay)
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except (ConnectionError, OSError):
            return


def serve_tcp(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_tcp_client, args=(conn,), daemon=True).start()


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, 53))
    tcp.listen()
    threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
    print("ready", flush=True)
    while True:
        packet, client = udp.recvfrom(4096)
        reply, delay = answer(packet)
        if reply is not None:
            threading.Timer(delay, udp.sendto, (reply, client)).start()


if __name__ == "__main__":
    main()
