"""drops probe: IP packets the kernel dropped, per reason and endpoints
(bpf/drops.bpf.c). The program adds to one pair of maps while user space
takes the other: each interval switches them and writes what the pair left
holds. The reasons' numbers differ between kernels: their names come from
the running kernel's BTF."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping

from nettrail.capture.events import DROP_KEY, DROP_VAL, FAMILIES, RecordContext, address
from nettrail.capture.libbpf import KernelBtf, map_batch, map_update
from nettrail.capture.loader import HookSet, Probe
from nettrail.errors import ProbeError, UnsupportedSystem

REASONS_ENUM = "skb_drop_reason"
REASON_PREFIX = "SKB_DROP_REASON_"
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}
PORTED = (6, 17)
# per slot: (endpoints kept, endpoints left out)
MAPS = (("drops_a", "unkept_a"), ("drops_b", "unkept_b"))
BATCH = 4096


def reason_names(values: Mapping[int, str]) -> dict[int, str]:
    """`SKB_DROP_REASON_NETFILTER_DROP` as `NETFILTER_DROP`, by value."""
    return {value: name.removeprefix(REASON_PREFIX) for value, name in values.items()}


@functools.cache
def kernel_reasons() -> dict[int, str]:
    """This kernel's drop reasons by value, read from its BTF once (checked
    before loading, named at the start); empty if it has none."""
    btf = KernelBtf()
    try:
        return reason_names(btf.enum_values(REASONS_ENUM))
    finally:
        btf.close()


def drop_reasons_problem() -> UnsupportedSystem | None:
    """Why this kernel cannot say why it drops packets, or None."""
    try:
        if kernel_reasons():
            return None
    except ProbeError as exc:
        return UnsupportedSystem(exc.problem, "use a kernel with BTF")
    return UnsupportedSystem("this kernel gives no drop reasons (enum skb_drop_reason, 5.17+)",
                             "the other probes still run; use a 5.17 or later kernel")


def take_counts(fd: int) -> list[tuple[bytes, int, int]]:
    """(key, packets, bytes) of a map's every key, each removed as it is read."""
    keys, values = map_batch(fd, DROP_KEY.size, DROP_VAL.size, BATCH, delete=True)
    size, vsize = DROP_KEY.size, DROP_VAL.size
    return [(keys[i * size:(i + 1) * size], *DROP_VAL.unpack_from(values, i * vsize))
            for i in range(len(keys) // size)]


def drop_record(host: str, key: bytes, packets: int, size: int, reasons: Mapping[int, str],
                kept: bool, ts: float, interval: int, interval_s: float) -> dict:
    """One drops.jsonl line; endpoints null where the map had no room for
    them (`kept` false) or the packet's headers gave none."""
    saddr, daddr, netns, reason, sport, dport, family, proto, _ = DROP_KEY.unpack(key)
    ported = kept and proto in PORTED
    return {"kind": "drop", "ts": ts, "interval": interval, "interval_s": interval_s,
            "host": host, "netns": netns or None,
            "reason": reasons.get(reason, f"reason {reason}"), "family": FAMILIES[family],
            "protocol": PROTOCOLS.get(proto, "other") if proto else None,
            "saddr": address(family, saddr) if kept and proto else None,
            "sport": sport if ported else None,
            "daddr": address(family, daddr) if kept and proto else None,
            "dport": dport if ported else None,
            "dropped_packets": packets, "skb_bytes": size, "endpoints_kept": kept}


class DropsProbe(Probe):
    name = "drops"
    hook_sets = (HookSet("tp_btf/kfree_skb (drop reasons)", ("tp_kfree_skb",)),)
    kernel_problem = staticmethod(drop_reasons_problem)

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        super().__init__(ctx, pids)
        self._slot = 0

    def interval_records(self, interval: int, last: bool) -> list[dict]:
        """Switch the program to the other maps, and take the ones it left."""
        assert self.obj is not None
        old, self._slot = self._slot, self._slot ^ 1
        map_update(self.obj.map_fd("drop_slot"), ctypes.c_uint32(0), ctypes.c_uint32(self._slot))
        ts, length_s = self.interval_end()
        return [drop_record(self.ctx.host, key, packets, size, kernel_reasons(), kept, ts,
                            interval, length_s)
                for name, kept in zip(MAPS[old], (True, False))
                for key, packets, size in take_counts(self.obj.map_fd(name))]
