"""The udp probe's pass rows, root-free: drop baselines are kept by inode,
so a socket whose cookie the pass could not read yet (none made before its
first datagram, where a pass reads sockets untrusted) still has its drops
before the window left out."""

from __future__ import annotations

from nettrail.capture.clock import Clock
from nettrail.capture.events import UDP_SOCK_ROW, RecordContext
from nettrail.capture.probes.udp import NO_OWNER, Flow, HeldSocket, UdpProbe, by_cookie, held_sockets

OWNER_FIELDS = (0, 0, 0, 0, 0, b"")  # struct udp_owner, nobody known


def row(cookie: int, drops: int, ino: int) -> bytes:
    return UDP_SOCK_ROW.pack(cookie, drops, ino, *OWNER_FIELDS)


def flow(cookie: int) -> Flow:
    return Flow(cookie, 2, "127.0.0.1", 53, "127.0.0.1", 4000, 10, 0, 1, 0, 1, 2)


def test_rows_decode_with_their_inode_and_only_cookied_ones_are_joinable() -> None:
    held = held_sockets(row(0, 100, 7) + row(5, 3, 8) + row(5, 3, 8))
    assert held[0] == HeldSocket(0, 7, 100, NO_OWNER)
    assert by_cookie(held) == {5: HeldSocket(5, 8, 3, NO_OWNER)}


def test_drops_before_the_window_stay_out_once_the_socket_has_a_cookie() -> None:
    probe = UdpProbe(RecordContext(Clock(), "test"))
    probe._drops_seen = {sock.ino: sock.drops for sock in held_sockets(row(0, 100, 7))}
    later = by_cookie(held_sockets(row(5, 130, 7)))
    assert probe._drops([flow(5)], later) == {5: 30}
    assert probe._drops([flow(5)], by_cookie(held_sockets(row(5, 131, 7)))) == {5: 1}
