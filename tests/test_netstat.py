"""The netstat probe's reading of procfs (root-free): nstat's names from
procfs's line pairs, a namespace read through a directory fd checked to be
in it, and what moved between readings."""

from __future__ import annotations

import os
from pathlib import Path

from nettrail.capture.probes.netstat import changes, namespaces, parse_counters, read_namespace

SNMP = ("Ip: Forwarding DefaultTTL\nIp: 1 64\n"
        "Tcp: RtoAlgorithm ActiveOpens RetransSegs OutSegs\nTcp: 1 5 7 812\n"
        "Udp: InDatagrams NoPorts InErrors\nUdp: 3 2 0\n")
NETSTAT = ("TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPSynRetrans\n"
           "TcpExt: 0 53 74 21\n")


def fake_proc(root: Path, pids: dict[int, str]) -> Path:
    """A /proc with each pid's ns/net a file standing for its namespace."""
    namespaces: dict[str, Path] = {}
    for pid, netns in pids.items():
        (root / str(pid) / "ns").mkdir(parents=True)
        (root / str(pid) / "net").mkdir()
        target = namespaces.setdefault(netns, root / f"netns-{netns}")
        target.touch()
        (root / str(pid) / "ns" / "net").symlink_to(target)
        (root / str(pid) / "net" / "snmp").write_text(SNMP)
        (root / str(pid) / "net" / "netstat").write_text(NETSTAT)
    return root


def test_counters_take_nstats_names() -> None:
    assert parse_counters(SNMP + NETSTAT) == {
        "TcpRetransSegs": 7, "TcpOutSegs": 812, "UdpNoPorts": 2, "UdpInErrors": 0,
        "TcpExtListenOverflows": 53, "TcpExtListenDrops": 74, "TcpExtTCPSynRetrans": 21}
    # a torn or odd file yields what it can, never raises
    assert parse_counters("TcpExt: ListenDrops\n") == {}
    assert parse_counters("TcpExt: ListenDrops\nTcpExt: -3\n") == {}


def test_one_process_reads_each_namespace(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {30: "a", 12: "a", 40: "b"})
    found, left_out = namespaces(str(proc))
    inode = {name: os.stat(proc / f"netns-{name}").st_ino for name in "ab"}
    assert found == {inode["a"]: 12, inode["b"]: 40} and left_out == 0
    assert namespaces(str(proc), limit=1) == ({inode["a"]: 12}, 1)
    # one already counted keeps its place whatever came before it
    assert namespaces(str(proc), limit=1, known={inode["b"]}) == ({inode["b"]: 40}, 1)
    assert read_namespace(12, inode["a"], str(proc))["TcpExtListenDrops"] == 74
    # moved to another namespace (or its pid reused) since it was listed: not read
    assert read_namespace(12, inode["b"], str(proc)) is None
    assert read_namespace(99, inode["a"], str(proc)) is None


def test_a_planted_link_is_not_followed(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {12: "a"})
    (proc / "12" / "net" / "netstat").unlink()
    (proc / "12" / "net" / "netstat").symlink_to(tmp_path / "netns-a")
    assert read_namespace(12, os.stat(proc / "netns-a").st_ino, str(proc)) is None


def test_what_moved_between_readings() -> None:
    before = {1: {"TcpOutSegs": 10, "TcpRetransSegs": 1}, 2: {"TcpOutSegs": 5}}
    now = {1: {"TcpOutSegs": 15, "TcpRetransSegs": 1}, 2: {"TcpOutSegs": 3},
           3: {"TcpOutSegs": 9}}
    # 2 went back (a new namespace on a reused inode), 3 is new: baselines only
    assert list(changes(before, now)) == [(1, {"TcpOutSegs": 5})]
