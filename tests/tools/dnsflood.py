"""A flood of DNS queries nobody answers: COUNT queries, each with its own
transaction id, from one UDP socket to 127.0.0.1:53 (run it in a network
namespace with no server there). Prints "sent COUNT netns INODE"."""

from __future__ import annotations

import os
import socket
import struct
import sys

QUESTION = b"\x05flood\x08nettrail\x04test\x00" + struct.pack("!HH", 1, 1)


def main() -> None:
    count = int(sys.argv[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for query_id in range(count):
            header = struct.pack("!HHHHHH", query_id & 0xFFFF, 0x0100, 1, 0, 0, 0)
            sock.sendto(header + QUESTION, ("127.0.0.1", 53))
    print(f"sent {count} netns {os.stat('/proc/self/ns/net').st_ino}", flush=True)


if __name__ == "__main__":
    main()
