"""Load a probe's BPF object with the first hook set this kernel accepts.

Each probe lists hook sets in order of preference; every one that fails is
recorded with its reason, and the one that worked is named in meta.json."""

from __future__ import annotations

import ctypes
import os
import struct
from importlib import resources
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from nettrail.capture.clock import boot_ns
from nettrail.capture.events import (MAX_PIDS, STAT_MAP_FULL, STAT_MAX, STAT_RINGBUF_FULL,
                                     RecordContext)
from nettrail.capture.libbpf import BpfObject, map_lookup
from nettrail.capture.preflight import BPF_NEEDS, CapNeed, missing_caps
from nettrail.errors import NettrailError, ProbeError, UnsupportedSystem

# The hook set of the TCP probes, on every kernel they support (5.11+;
# preflight.tcp_counter_problem says what a kernel lacks); where the verifier
# leaves a pass's sockets untrusted, the second (bpf/common.bpf.h).
TCP_COUNTERS = "tp_btf/inet_sock_set_state + iter/task_file (TCP socket counters)"
BY_ADDRESS = ", state by socket address"
# The per-socket state maps the TCP probes share (bpf/sock_state.bpf.h)
STATE_MAPS = ("sock_state", "sock_state_at")


class SharedState(NamedTuple):
    """A TCP probe's per-socket state, for the other to reuse."""
    fds: dict[str, int]  # STATE_MAPS by name
    by_address: bool     # kept by socket address (HookSet.file_sockets_untrusted)


@dataclass(frozen=True)
class HookSet:
    name: str                   # recorded as the probe's hook
    attach: tuple[str, ...]     # programs attached for the whole window
    on_demand: tuple[str, ...] = ()  # loaded too, run later (iterators)
    # its object is NAME.untrusted.bpf.o: the passes read sockets untrusted
    file_sockets_untrusted: bool = False

    def untrusted(self, note: str = ", sockets read untrusted",
                  attach: tuple[str, ...] = ()) -> HookSet:
        """This set for a kernel whose verifier leaves a pass's sockets
        untrusted: its name with `note`, attaching `attach` too."""
        return HookSet(self.name + note, self.attach + attach, self.on_demand, True)


@dataclass
class ProbeStatus:
    status: str = "skipped"     # ok / failed / skipped
    hook: str | None = None
    error: str | None = None
    detail: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"status": self.status, "hook": self.hook, "error": self.error, **self.detail}


def object_path(probe: str, untrusted: bool = False) -> Path:
    """The probe's compiled object (`untrusted`: its build for kernels whose
    verifier leaves a pass's sockets untrusted), package data of the wheel."""
    name = f"{probe}.untrusted.bpf.o" if untrusted else f"{probe}.bpf.o"
    path = Path(str(resources.files("nettrail.capture") / "bpf_objects" / name))
    if not path.is_file():
        raise UnsupportedSystem(f"BPF object {path} is missing",
                                "build it with `make bpf` or reinstall nettrail")
    return path


def pid_filter(pids: tuple[int, ...]) -> dict[str, bytes]:
    """The targ_pids/targ_npids globals every probe shares (the CLI allows at
    most MAX_PIDS)."""
    padded = list(pids) + [0] * (MAX_PIDS - len(pids))
    return {"targ_pids": struct.pack(f"{MAX_PIDS}I", *padded),
            "targ_npids": struct.pack("I", len(pids))}


def self_filter() -> dict[str, bytes]:
    """The self_tgid global of the TCP probes (bpf/sock_state.bpf.h): a
    socket closed in this process's task is never claimed as its."""
    return {"self_tgid": struct.pack("I", os.getpid())}


def load_first_working(probe: str, hook_sets: tuple[HookSet, ...],
                       configure: Callable[[BpfObject, HookSet], None],
                       attach: Callable[[BpfObject, HookSet], None]
                       ) -> tuple[BpfObject, HookSet, list[str]]:
    """Open, configure, load and attach the first hook set that works; the
    ones before it that failed, each with why."""
    failures = []
    for hooks in hook_sets:
        obj = BpfObject(str(object_path(probe, hooks.file_sockets_untrusted)))
        try:
            obj.keep_only(hooks.attach + hooks.on_demand)
            configure(obj, hooks)
            obj.load()
            attach(obj, hooks)
            return obj, hooks, failures
        except ProbeError as exc:
            failures.append(f"{hooks.name}: {exc.problem}")
            obj.close()
    raise ProbeError("; ".join(failures))


def stat_counts(obj: BpfObject) -> list[int]:
    """The object's `stats` map, by enum stat_index (bpf/nettrail.h)."""
    fd, counts = obj.map_fd("stats"), []
    for index in range(STAT_MAX):
        value = ctypes.c_uint64()
        counts.append(value.value if map_lookup(fd, ctypes.c_uint32(index), value) else 0)
    return counts


# meta.json's lost_events_by_cause: each cause's counter
STAT_CAUSES = {"ringbuf_full": STAT_RINGBUF_FULL, "map_full": STAT_MAP_FULL}


def read_stats(obj: BpfObject, causes: dict[str, int] = STAT_CAUSES) -> dict[str, int]:
    """Events this probe's kernel side dropped, by cause (ring buffer or map full)."""
    counts = stat_counts(obj)
    return {cause: counts[index] for cause, index in causes.items()}


def add_lost(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for cause, n in count.items():
            total[cause] = total.get(cause, 0) + n
    return total


def recursion_misses(obj: BpfObject) -> int:
    """Runs the kernel skipped because one of the object's programs was
    already running on that CPU (each one an event not seen)."""
    return sum(info.recursion_misses for info in obj.program_infos().values())


class Probe:
    """A probe's life: start (load, attach), hand over records while running
    and at the end, close. The window knows probes only through this
    interface. A probe that cannot start records why and stays out of the way.

    Records are dicts in the shape of the probe's log (docs/format.md)."""

    name = ""  # its key in nettrail.format.LOGS
    hook_sets: tuple[HookSet, ...] = ()
    # opt-in parts asked for (nettrail.format.PROBE_OPTIONS), set before start()
    options: frozenset[str] = frozenset()

    capabilities: tuple[CapNeed, ...] = BPF_NEEDS
    # its object claims socket owners from the task of a state change (self_filter)
    claims_owners = False

    @staticmethod
    def kernel_problem() -> NettrailError | None:
        """What this kernel lacks for the probe (checked before loading)."""
        return None

    def privilege_problem(self) -> str | None:
        """The capabilities it cannot start without; the optional ones it
        lacks are noted in its status (`degraded`)."""
        required, optional = missing_caps(self.capabilities)
        if optional:
            self.status.detail["degraded"] = [f"without {n.text()}" for n in optional]
        if required:
            return "needs " + ", ".join(n.text() for n in required)
        return None

    def __init__(self, ctx: RecordContext, pids: tuple[int, ...] = ()) -> None:
        self.ctx = ctx
        self.pids = pids
        self.status = ProbeStatus()
        self.obj: BpfObject | None = None
        self.hooks: HookSet | None = None
        self._interval_start_ns = boot_ns()

    def streams(self) -> list[tuple[str, Callable[[bytes], list[dict]]]]:
        """Ring buffers to poll while running: map name and the decoder of its
        event bytes into records."""
        return []

    def interval_records(self, interval: int, last: bool) -> Iterable[dict]:
        """Records at the end of an interval (`last`: the window's end),
        written as they are made, a chunk at a time."""
        return []

    def interval_end(self) -> tuple[float, float]:
        """(ts, length_s) of the interval that ends now; the next starts now
        (the first one at start())."""
        now_ns = boot_ns()
        length_s = round((now_ns - self._interval_start_ns) / 1e9, 6)
        self._interval_start_ns = now_ns
        return self.ctx.clock.unix(now_ns), length_s

    def final_records(self) -> Iterable[dict]:
        """Records only known when the window ends (still open, still pending)."""
        return []

    def rodata(self, hooks: HookSet) -> dict[str, bytes]:
        return {**pid_filter(self.pids), **(self_filter() if self.claims_owners else {})}

    def configure(self, obj: BpfObject, hooks: HookSet) -> None:
        """Before load: the `const volatile` settings for this hook set."""
        obj.set_rodata(self.rodata(hooks))

    def attach(self, obj: BpfObject, hooks: HookSet) -> None:
        for program in hooks.attach:
            obj.attach(program)

    def start(self, started: Mapping[str, Probe]) -> None:
        """Load and attach; `started` are the probes started before this one."""
        kernel = self.kernel_problem()
        problem = kernel.problem if kernel else self.privilege_problem()
        if problem:
            self.status = ProbeStatus("failed", error=problem, detail=self.status.detail)
            return
        try:
            self.obj, hooks, failed = load_first_working(self.name, self.hook_sets,
                                                         self.configure, self.attach)
        except ProbeError as exc:
            self.status = ProbeStatus("failed", error=exc.problem, detail=self.status.detail)
            return
        self.hooks = hooks
        if failed:
            self.status.detail["hooks_failed"] = failed
        self.status = ProbeStatus("ok", hook=hooks.name, detail=self.status.detail)
        self._interval_start_ns = boot_ns()

    @property
    def running(self) -> bool:
        return self.obj is not None

    def lost_events(self) -> dict[str, int]:
        """By cause: dropped (read_stats), not seen (recursion_misses), or
        past a pass's bound (pass_rows_cut)."""
        if not self.obj:
            return {}
        return {**read_stats(self.obj), "recursion_misses": recursion_misses(self.obj),
                "pass_rows_cut": self.obj.rows_cut}

    def close(self) -> None:
        if self.obj:
            self.obj.close()
            self.obj = None
