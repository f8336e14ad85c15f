"""udp probe (`--probes +udp`): UDP payload bytes and datagrams per (owner,
flow) per interval (bpf/udp.bpf.c). The programs add to one of two flow maps;
each interval switches them and takes the one left, then a pass over open
files names the owners of sockets nobody sent on and reads each socket's
drops (a delta against the pass before)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from typing import NamedTuple

from nettrail.capture.events import (FAMILIES, UDP_FLOW, UDP_FLOW_KEY, UDP_OWNER,
                                     UDP_SOCK_ROW, RecordContext, UdpOwner, address, text)
from nettrail.capture.libbpf import BpfObject, map_batch, map_lookup, map_update
from nettrail.capture.loader import HookSet, Probe
from nettrail.capture.preflight import BPF_NEEDS, IDENTITY_NEED
from nettrail.capture.probes.dns_wire import WIRE_NEED, cgroup2_root
from nettrail.errors import ProbeError

HOOK = "cgroup_skb ingress/egress + iter/task_file (UDP flows)"
PROGRAMS = ("udp_egress", "udp_ingress")
PASS = "udp_pass"
FLOW_MAPS = ("flows_a", "flows_b")
BATCH = 4096
MAX_SOCKETS = 65536  # drop baselines kept at most (the BPF owner map's size)


class Owner(NamedTuple):
    pid: int
    nspid: int
    netns: int
    cgroup_id: int
    comm: str


NO_OWNER = Owner(0, 0, 0, 0, "")


def _owner(cgroup_id: int, pid: int, nspid: int, netns: int, _pad: int, comm: bytes) -> Owner:
    return Owner(pid, nspid, netns, cgroup_id, text(comm))


class Flow(NamedTuple):
    cookie: int
    family: int
    laddr: str
    lport: int
    raddr: str
    rport: int
    rx_bytes: int
    tx_bytes: int
    rx_datagrams: int
    tx_datagrams: int
    first_ns: int
    last_ns: int


def flows_from_map(keys: bytes, values: bytes) -> list[Flow]:
    """Flows from a flow map's batch (struct udp_flow_key, struct udp_flow)."""
    out = []
    for key, val in zip(UDP_FLOW_KEY.iter_unpack(keys), UDP_FLOW.iter_unpack(values)):
        cookie, laddr, raddr, lport, rport, family, _pad = key
        out.append(Flow(cookie, family, address(family, laddr), lport, address(family, raddr),
                        rport, *val))
    return out


class HeldSocket(NamedTuple):
    """A socket a pass found open (struct udp_sock_row)."""
    cookie: int  # 0: none made yet, no datagram of it seen (file_sockets_untrusted)
    ino: int     # its inode: a drop baseline's key, cookie or not
    drops: int   # so far
    owner: Owner


def held_sockets(rows: bytes) -> list[HeldSocket]:
    return [HeldSocket(cookie, ino, drops, _owner(*owner))
            for cookie, drops, ino, *owner in UDP_SOCK_ROW.iter_unpack(rows)]


def by_cookie(held: list[HeldSocket]) -> dict[int, HeldSocket]:
    """cookie -> socket, of those with one (several processes holding it: the first row)."""
    out: dict[int, HeldSocket] = {}
    for sock in held:
        if sock.cookie:
            out.setdefault(sock.cookie, sock)
    return out


def drop_lines(flows: list[Flow], drops: dict[int, int]) -> dict[Flow, int | None]:
    """Each flow's `dropped_datagrams`: a socket's on its flow that received most, 0 on
    its others, None where the socket was not found open."""
    busiest: dict[int, Flow] = {}
    for f in flows:
        if f.cookie not in busiest or f.rx_datagrams > busiest[f.cookie].rx_datagrams:
            busiest[f.cookie] = f
    return {f: (None if f.cookie not in drops else
                drops[f.cookie] if busiest[f.cookie] is f else 0) for f in flows}


def udp_record(ctx: RecordContext, f: Flow, owner: Owner, drops: int | None, ts: float,
               interval: int, interval_s: float) -> dict:
    return {"kind": "udp", "ts": ts, "interval": interval, "interval_s": interval_s,
            **ctx.identity(owner.pid or None, owner.comm, owner.cgroup_id or None,
                           owner.nspid or None),
            "netns": owner.netns or None, "family": FAMILIES[f.family], "laddr": f.laddr,
            "lport": f.lport, "raddr": f.raddr, "rport": f.rport, "rx_bytes": f.rx_bytes,
            "tx_bytes": f.tx_bytes, "rx_datagrams": f.rx_datagrams,
            "tx_datagrams": f.tx_datagrams, "dropped_datagrams": drops,
            "first_ts": ctx.clock.unix(f.first_ns), "last_ts": ctx.clock.unix(f.last_ns)}


class UdpProbe(Probe):
    name = "udp"
    hook_sets = (HookSet(HOOK, PROGRAMS, (PASS,)),)
    hook_sets += (hook_sets[0].untrusted(),)
    capabilities = (*BPF_NEEDS, WIRE_NEED, IDENTITY_NEED)

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self._slot = 0
        self._drops_seen: dict[int, int] = {}  # ino -> drops as last reported

    def attach(self, obj: BpfObject, hooks: HookSet) -> None:
        """On the cgroup v2 root, as wire-level DNS: every socket, every namespace."""
        try:
            cgroup = os.open(cgroup2_root(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ProbeError(f"cannot open the cgroup v2 root: {exc.strerror}") from exc
        try:
            for program in hooks.attach:
                obj.attach_cgroup(program, cgroup)
        finally:
            os.close(cgroup)

    def start(self, started: Mapping[str, Probe]) -> None:
        """Attach, then a first pass: drops before the window are not the window's."""
        super().start(started)
        if self.running:
            self._drops_seen = {sock.ino: sock.drops for sock in self._pass()}

    def _pass(self) -> list[HeldSocket]:
        assert self.obj is not None
        return held_sockets(self.obj.read_iter(PASS, row_bytes=UDP_SOCK_ROW.size))

    def _sender(self, cookie: int) -> Owner | None:
        """The owner the programs took from a socket's first send (it may be closed)."""
        assert self.obj is not None
        owner = UdpOwner()
        if not map_lookup(self.obj.map_fd("udp_owners"), ctypes.c_uint64(cookie), owner):
            return None
        return _owner(*UDP_OWNER.unpack(bytes(owner)))

    def take_interval(self) -> tuple[list[Flow], dict[int, HeldSocket]]:
        """Switch the programs to the other map, take the one they left, then
        the pass (after: a socket that received in the interval is held now,
        unless it closed)."""
        assert self.obj is not None
        old, self._slot = self._slot, self._slot ^ 1
        map_update(self.obj.map_fd("udp_slot"), ctypes.c_uint32(0), ctypes.c_uint32(self._slot))
        keys, values = map_batch(self.obj.map_fd(FLOW_MAPS[old]), UDP_FLOW_KEY.size,
                                 UDP_FLOW.size, BATCH, delete=True)
        return flows_from_map(keys, values), by_cookie(self._pass())

    def _drops(self, flows: list[Flow], sockets: dict[int, HeldSocket]) -> dict[int, int]:
        """Drops in the interval of the sockets with flows; the others keep
        theirs for an interval they have a flow in."""
        out = {}
        for cookie in {f.cookie for f in flows} & sockets.keys():
            sock = sockets[cookie]
            out[cookie] = max(sock.drops - self._drops_seen.get(sock.ino, 0), 0)
            self._drops_seen[sock.ino] = sock.drops
        if len(self._drops_seen) > MAX_SOCKETS:  # sockets gone: forget the oldest
            for ino in list(self._drops_seen)[:len(self._drops_seen) - MAX_SOCKETS]:
                del self._drops_seen[ino]
        return out

    def interval_records(self, interval: int, last: bool) -> list[dict]:
        flows, sockets = self.take_interval()
        ts, length_s = self.interval_end()
        drops = drop_lines(flows, self._drops(flows, sockets))
        senders: dict[int, Owner] = {}  # of sockets closed since: one lookup per socket
        records = []
        for f in flows:
            # a held socket's row has its sender, if it had one (bpf/udp.bpf.c)
            if f.cookie in sockets:
                owner = sockets[f.cookie].owner
            elif (owner := senders.get(f.cookie)) is None:
                owner = senders[f.cookie] = self._sender(f.cookie) or NO_OWNER
            if self.pids and owner.pid not in self.pids:
                continue  # received by a socket of a process not asked for
            records.append(udp_record(self.ctx, f, owner, drops[f], ts, interval, length_s))
        return records
