"""A slow network path between two network namespaces, for the tests: sch_netem
is not built on the test hosts, so a TUN device in each namespace carries the
packets through this process, which holds each one DELAY ms before writing it
to the other side. Every packet waits at least that long (the clock is read
before each write), so an RTT across the path is at least twice the delay.

  delayline.py --ns A --ns B --delay-ms D
      make the TUN device "ntdelay" in /run/netns/A and in /run/netns/B, print
      "ready" (the test gives them addresses), then forward until stdin closes
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import heapq
import os
import select
import struct
import subprocess
import sys
import time

DEVICE = "ntdelay"
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000
MAX_PACKET = 65_536


def setns(path: str) -> None:
    """Enter the network namespace at path (this thread's: the process has one)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def open_tun() -> int:
    """A TUN device of this namespace, IP packets without a header; it goes
    when its fd closes."""
    if not os.path.exists("/dev/net/tun"):  # a kernel with tun as a module, not loaded yet
        subprocess.run(["modprobe", "tun"], check=True)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def forward(ends: tuple[int, int], delay_s: float) -> None:
    """Each packet read from one end is written to the other delay_s later,
    in order; until stdin closes."""
    other = {ends[0]: ends[1], ends[1]: ends[0]}
    held: list[tuple[float, int, int, bytes]] = []  # (due, order, to, packet)
    order = 0
    stdin = sys.stdin.fileno()
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([stdin, *ends], [], [], wait)
        if stdin in readable and not os.read(stdin, 4096):
            return
        for fd in readable:
            if fd != stdin:
                order += 1
                heapq.heappush(held, (time.monotonic() + delay_s, order, other[fd],
                                      os.read(fd, MAX_PACKET)))
        while held and held[0][0] <= time.monotonic():
            _, _, to, packet = heapq.heappop(held)
            try:
                os.write(to, packet)
            except OSError:  # that side's device is down: the packet is lost, as on a wire
                pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ns", action="append", required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    args = p.parse_args()
    if len(args.ns) != 2:
        p.error("two --ns")
    ends = []
    for name in args.ns:
        setns(f"/run/netns/{name}")
        ends.append(open_tun())
    print("ready", flush=True)
    forward((ends[0], ends[1]), args.delay_ms / 1000)


if __name__ == "__main__":
    main()
