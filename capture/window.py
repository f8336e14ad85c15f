"""Run one capture window: start the probes, read them interval by interval,
write the logs, and always leave a complete capture, even when stopped early."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import math
import platform
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nettrail.capture.probes.bandwidth import BandwidthProbe
from nettrail.capture.clock import Clock, boot_ns
from nettrail.capture.probes.dns import DnsProbe
from nettrail.capture.events import bandwidth_record, dns_records, session_records
from nettrail.hostlock import capture_lock
from nettrail.capture.libbpf import RingBuffers
from nettrail.capture.loader import Probe
from nettrail.capture.logwriter import LogWriter
from nettrail.capture.preflight import require_capture_ok
from nettrail.capture.probes.sessions import SessionsProbe
from nettrail.errors import NettrailError, ProbeError
from nettrail.logformat import FORMAT, PROBES
from nettrail import VERSION

POLL_MS = 100
WRITE_CHUNK = 4096


def start_probes(names: tuple[str, ...], pids: tuple[int, ...]) -> dict[str, Probe]:
    """Load and attach the probes asked for, each on its best working hook.
    Bandwidth goes first: sessions can read socket owners from its counters.
    A probe that cannot start records why; the others still run."""
    probes: dict[str, Probe] = {}
    for name in sorted(names, key=PROBES.index):
        if name == "bandwidth":
            probe: Probe = BandwidthProbe(pids)
        elif name == "sessions":
            bandwidth = probes.get("bandwidth")
            shared = bandwidth.shared_counts_fd() if bandwidth and bandwidth.running else None
            probe = SessionsProbe(pids, shared)
        else:
            probe = DnsProbe(pids)
        probe.start()
        probes[name] = probe
    return probes


@dataclass(frozen=True)
class CaptureOptions:
    interval_s: float = 5.0
    count: int = 12
    out_dir: Path | None = None
    pids: tuple[int, ...] = ()
    probes: tuple[str, ...] = PROBES
    report: bool = True
    title: str | None = None
    note: str | None = None
    trigger: str = "manual"  # manual / scheduled / triggered


@dataclass
class Totals:
    """Running numbers for the live view and the closing line."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    sessions: int = 0
    lookups: int = 0
    failed_lookups: int = 0
    interval: int = 0
    seconds_left: float = 0.0
    lost: dict[str, int] = field(default_factory=dict)


class View(Protocol):
    def begin(self, capture: Capture) -> None: ...
    def tick(self, capture: Capture) -> None: ...
    def end(self, capture: Capture) -> None: ...


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt()
KEEP_BYTES = 64 << 20


def keep_freed_memory() -> None:
    """Each drain builds and frees megabytes; by default glibc maps them fresh
    and returns them, and every page faults in again (measured: most of the
    capture's kernel time). Keep freed memory for reuse instead."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt:
        mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)
        mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def default_dir(root: Path | None = None) -> Path:
    """./nettrail-<UTC second>-<random>: nobody can pre-create it (from /tmp,
    say) to make root capture into their directory; LogWriter's mkdir would
    refuse a foreign one anyway."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (root or Path.cwd()) / f"nettrail-{stamp}-{secrets.token_hex(4)}"


class Capture:
    def __init__(self, opts: CaptureOptions, view: View, stop: threading.Event,
                 render: Callable[[Path], Path] | None = None) -> None:
        self.opts = opts
        self.view = view
        self.stop = stop
        self.render = render
        self.totals = Totals()
        self.probes: dict[str, Probe] = {}
        self.directory = opts.out_dir or default_dir()
        self.report_path: Path | None = None
        self.report_error: str | None = None

    # -- set-up -------------------------------------------------------------

    def _meta(self) -> dict:
        probes = {name: (self.probes[name].status.as_json() if name in self.probes
                         else {"status": "skipped", "hook": None, "error": None})
                  for name in PROBES}
        return {"format": FORMAT, "version": VERSION, "host": socket.gethostname(),
                "kernel": platform.release(), "started_at": self.started_at,
                "ended_at": self.ended_at, "interval_s": self.opts.interval_s,
                "count": self.opts.count, "intervals_done": self.intervals_done,
                "interrupted": self.interrupted, "trigger": self.opts.trigger,
                "filters": {"pids": list(self.opts.pids), "probes": list(self.opts.probes)},
                "probes": probes, "lost_events": dict(self.totals.lost),
                "title": self.opts.title, "note": self.opts.note}

    def _start_probes(self) -> None:
        self.probes = start_probes(self.opts.probes, self.opts.pids)
        self.totals.lost = dict.fromkeys(PROBES, 0)

    def _write_sessions(self, records: list[dict]) -> None:
        self.writer.write("sessions", records)
        self.totals.sessions += len(records)

    def _write_lookups(self, records: list[dict]) -> None:
        self.writer.write("dns", records)
        self.totals.lookups += len(records)
        self.totals.failed_lookups += sum(not r["ok"] and not r["pending"] for r in records)

    def _subscribe(self, rings: RingBuffers) -> None:
        """Sessions and lookups arrive through ring buffers, in batches."""
        for name, decode, write in (("sessions", session_records, self._write_sessions),
                                    ("dns", dns_records, self._write_lookups)):
            probe = self.probes.get(name)
            if probe and probe.running:
                rings.add(probe.obj.map_fd("events"),
                          lambda blob, decode=decode, write=write: write(decode(blob, self.clock)))

    # -- the window ---------------------------------------------------------

    def run(self) -> Path:
        require_capture_ok()
        with capture_lock():
            return self._run()

    def _run(self) -> Path:
        keep_freed_memory()
        self.clock = Clock()
        self.started_at = iso(dt.datetime.now(dt.timezone.utc))
        self.ended_at = None
        self.intervals_done = 0
        self.interrupted = False
        self.writer = LogWriter(self.directory)
        rings = RingBuffers()
        try:
            self._start_probes()
            self.writer.write_meta(self._meta())
            if not any(p.running for p in self.probes.values()):
                raise ProbeError("no probe could start: " + "; ".join(
                    f"{n}: {p.status.error}" for n, p in self.probes.items()))
            self._subscribe(rings)
            self.view.begin(self)
            self._intervals(rings)
        finally:
            self._finish(rings)
        self.view.end(self)
        return self.directory

    def _bandwidth(self) -> BandwidthProbe | None:
        probe = self.probes.get("bandwidth")
        return probe if probe and probe.running else None

    def _intervals(self, rings: RingBuffers) -> None:
        start = boot_ns()
        for interval in range(1, self.opts.count + 1):
            self.totals.interval = interval
            end = start + int(interval * self.opts.interval_s * 1e9)
            while (left := end - boot_ns()) > 0 and not self.stop.is_set():
                self.totals.seconds_left = left / 1e9
                rings.wait(min(POLL_MS, math.ceil(left / 1e6)))
                self.view.tick(self)
            last = interval == self.opts.count or self.stop.is_set()
            self._write_bandwidth(interval, last)
            rings.drain()
            self.intervals_done = interval - (self.stop.is_set() and left > 0)
            self._checkpoint()
            if self.stop.is_set():
                break

    def _write_bandwidth(self, interval: int, last: bool) -> None:
        bandwidth = self._bandwidth()
        if not bandwidth:
            return
        conns = bandwidth.take_final() if last else bandwidth.take_interval()
        ts = self.clock.now()
        # in chunks: a busy interval has tens of thousands of rows
        for start in range(0, len(conns), WRITE_CHUNK):
            chunk = conns[start:start + WRITE_CHUNK]
            self.writer.write("bandwidth", [bandwidth_record(c, ts, interval) for c in chunk])
        self.totals.rx_bytes += sum(c.rx_bytes for c in conns)
        self.totals.tx_bytes += sum(c.tx_bytes for c in conns)

    def _checkpoint(self) -> None:
        """Make what was captured so far durable (a crash loses one interval)."""
        for name, probe in self.probes.items():
            self.totals.lost[name] = probe.lost_events()
        self.writer.flush()
        self.writer.write_meta(self._meta())

    def _finish(self, rings: RingBuffers) -> None:
        """Whatever happened, write what is known and release the probes."""
        self.interrupted = self.stop.is_set()
        try:
            with contextlib.suppress(NettrailError):
                rings.drain()
            sessions, dns = self.probes.get("sessions"), self.probes.get("dns")
            if sessions and sessions.running:
                self._write_sessions(sessions.open_sessions(self.clock))
            if dns and dns.running:
                self._write_lookups(dns.pending(self.clock))
            self.ended_at = iso(dt.datetime.now(dt.timezone.utc))
            self._checkpoint()
        finally:
            rings.free()
            for probe in self.probes.values():
                probe.close()
            self.writer.close()
        if self.opts.report and self.render:
            try:
                self.report_path = self.render(self.directory)
            except NettrailError as exc:
                self.report_error = exc.one_line()
