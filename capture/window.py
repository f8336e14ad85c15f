"""Run one capture window: start the probes, read them interval by interval,
write the logs, and always leave a complete capture, even when stopped early."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import itertools
import math
import os
import platform
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nettrail import VERSION
from nettrail.capture.budget import SessionBudget
from nettrail.capture.clock import Clock, boot_ns
from nettrail.capture.events import RecordContext
from nettrail.capture.drainer import Drainer
from nettrail.capture.loader import Probe
from nettrail.capture.names import record_filter
from nettrail.capture.pacing import began_late, next_interval
from nettrail.capture.logwriter import LogWriter
from nettrail.capture.preflight import require_capture_ok
from nettrail.capture.probes import PROBE_CLASSES
from nettrail.errors import NettrailError, ProbeError
from nettrail.headline import Headline
from nettrail.hostlock import capture_lock
from nettrail.format import DEFAULT_PROBES, FORMAT, PROBE_OPTIONS, PROBES
from nettrail.format.logs.sessions import INTERVAL_LINES
from nettrail.format.meta import CAPTURE_NICE

POLL_MS = 100
WRITE_CHUNK = 4096


def start_probes(ctx: RecordContext, names: tuple[str, ...], pids: tuple[int, ...]
                 ) -> dict[str, Probe]:
    """Load and attach the probes asked for, each on its best working hook, in
    PROBE_CLASSES order (a probe may use one started before it). A probe that
    cannot start records why; the others still run."""
    probes: dict[str, Probe] = {}
    for cls in PROBE_CLASSES:
        if cls.name in names:
            probe = cls(ctx, pids)
            probe.options = frozenset(o for o in names if PROBE_OPTIONS.get(o) == cls.name)
            probe.start(probes)
            probes[cls.name] = probe
    return probes


@dataclass(frozen=True)
class CaptureOptions:
    interval_s: float = 5.0
    count: int = 12
    open_ended: bool = False  # until Ctrl-C: `count` is only the ceiling
    out_dir: Path | None = None
    pids: tuple[int, ...] = ()
    probes: tuple[str, ...] = DEFAULT_PROBES
    report: bool = True
    title: str | None = None
    note: str | None = None
    trigger: str = "manual"  # manual / scheduled / triggered
    containers: tuple[str, ...] = ()  # --container: names or ids (capture/names.py)
    pods: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    session_lines: int = INTERVAL_LINES  # per interval; past them, summaries (capture/budget.py)
    nice: int = CAPTURE_NICE  # during the window (its threads inherit it)


@dataclass
class Progress:
    """Where the window is, and what was lost, for the live view and the end."""

    interval: int = 0
    seconds_left: float = 0.0
    lost: dict[str, int] = field(default_factory=dict)
    lost_by_cause: dict[str, dict[str, int]] = field(default_factory=dict)


class View(Protocol):
    def begin(self, capture: Capture) -> None: ...
    def tick(self, capture: Capture) -> None: ...
    def records(self, probe: str, records: list[dict]) -> None: ...
    def interval_end(self, capture: Capture) -> None: ...
    def rendering(self, capture: Capture) -> None: ...
    def end(self, capture: Capture) -> None: ...


@contextlib.contextmanager
def priority(nice: int) -> Iterator[int]:
    """This thread, and the threads it starts, at `nice`, then at its own
    again; yields the nice value it runs at: its own where it may not raise
    its priority (no CAP_SYS_NICE). Linux keeps a nice value per thread."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        nice = own
    try:
        yield nice
    finally:
        with contextlib.suppress(PermissionError):  # back down from a nicer value
            os.setpriority(os.PRIO_PROCESS, 0, own)


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
                 render: Callable[[Path, int], Path] | None = None) -> None:
        """`render(directory, dir_fd)` writes the report of the capture in
        `directory` (for messages) through `dir_fd`, the directory's open fd."""
        self.opts = opts
        self.view = view
        self.stop = stop
        self.render = render
        self.progress = Progress()
        self.headline = Headline()
        self.probes: dict[str, Probe] = {}
        self.directory = opts.out_dir or default_dir()
        self.report_path: Path | None = None
        self.report_error: str | None = None
        self.meta: dict | None = None  # as last written to meta.json
        self.keep = record_filter(opts.containers, opts.pods, opts.namespaces)
        self.budgets = {"sessions": SessionBudget(opts.session_lines, socket.gethostname())}
        self.nice = opts.nice  # as the window runs (priority())

    # -- set-up -------------------------------------------------------------

    def _meta(self) -> dict:
        probes = {name: (self.probes[name].status.as_json() if name in self.probes
                         else {"status": "skipped", "hook": None, "error": None})
                  for name in PROBES}
        return {"format": FORMAT, "version": VERSION, "host": socket.gethostname(),
                "kernel": platform.release(), "started_at": self.started_at,
                "ended_at": self.ended_at, "interval_s": self.opts.interval_s,
                "count": self.opts.count, "intervals_done": self.intervals_done,
                "intervals_late": self.intervals_late,
                "interrupted": self.interrupted, "nice": self.nice,
                "trigger": self.opts.trigger,
                "filters": {"pids": list(self.opts.pids), "probes": list(self.opts.probes),
                            "containers": list(self.opts.containers),
                            "pods": list(self.opts.pods),
                            "namespaces": list(self.opts.namespaces)},
                "probes": probes, "lost_events": dict(self.progress.lost),
                "lost_events_by_cause": dict(self.progress.lost_by_cause),
                "line_budgets": {probe: b.as_json() for probe, b in self.budgets.items()},
                "summary": self.headline.as_json(),
                "title": self.opts.title, "note": self.opts.note}

    def _start_probes(self) -> None:
        ctx = RecordContext(self.clock, socket.gethostname())
        self.probes = start_probes(ctx, self.opts.probes, self.opts.pids)
        self.progress.lost = dict.fromkeys(PROBES, 0)

    def _running(self) -> list[Probe]:
        return [p for p in self.probes.values() if p.running]

    def _write(self, probe: str, records: Iterable[dict]) -> None:
        """Append records to the probe's log, in chunks (a busy interval has
        tens of thousands; the open sessions at the end may be 100,000, made
        chunk by chunk), and count them in the headline. Past the log's line
        budget for the interval, they are counted in its summaries instead;
        the view (nettrail life, top) still sees every one."""
        records = iter(records) if self.keep is None else filter(self.keep, records)
        budget = self.budgets.get(probe)
        while chunk := list(itertools.islice(records, WRITE_CHUNK)):
            self.view.records(probe, chunk)
            if budget and not (chunk := budget.admit(chunk)):
                continue
            self.writer.write(probe, chunk)
            self.headline.add(probe, chunk)

    def _subscribe(self, rings: Drainer) -> None:
        """Events arrive through ring buffers, in batches."""
        for probe in self._running():
            for map_name, decode in probe.streams():
                rings.add(probe.obj.map_fd(map_name),
                          lambda blob, name=probe.name, decode=decode:
                          self._write(name, decode(blob)))

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
        self.intervals_late = 0
        self.interrupted = False
        self.writer = LogWriter(self.directory, self.opts.probes)
        # the report reads and writes through it: the path is not looked up again
        self.dir_fd = os.dup(self.writer.dir_fd)
        rings = Drainer()
        try:
            with priority(self.opts.nice) as self.nice:
                try:
                    self._start_probes()
                    self.writer.write_meta(self._meta())
                    if not self._running():
                        raise ProbeError("no probe could start: " + "; ".join(
                            f"{n}: {p.status.error}" for n, p in self.probes.items()))
                    self._subscribe(rings)
                    rings.start()
                    self.view.begin(self)
                    self._intervals(rings)
                finally:
                    self._finish(rings)
            self._render()
        finally:
            os.close(self.dir_fd)
        self.view.end(self)
        return self.directory

    def _intervals(self, rings: Drainer) -> None:
        start, interval_ns, interval = boot_ns(), int(self.opts.interval_s * 1e9), 1
        while True:
            self.progress.interval = interval
            for budget in self.budgets.values():
                budget.new_interval()
            end = start + interval * interval_ns
            while (left := end - boot_ns()) > 0 and not self.stop.is_set():
                self.progress.seconds_left = left / 1e9
                rings.wait(min(POLL_MS, math.ceil(left / 1e6)))
                self.view.tick(self)
            self.intervals_late += began_late(boot_ns() - end, interval_ns)
            # the real length so far: an interrupted window is shorter than asked
            self.headline.elapsed_s = round((min(boot_ns(), end) - start) / 1e9, 3)
            last = interval == self.opts.count or self.stop.is_set()
            for probe in self._running():
                self._write(probe.name, probe.interval_records(interval, last))
            rings.drain()
            self.intervals_done = interval - (self.stop.is_set() and left > 0)
            self._checkpoint()
            self.view.interval_end(self)
            if last or self.stop.is_set():
                break
            after = next_interval(start, boot_ns(), interval_ns, interval, self.opts.count)
            self.intervals_late += after - interval - 1  # folded into `after`
            interval = after

    def _checkpoint(self) -> None:
        """Make what was captured so far durable (a crash loses one interval)."""
        for log, budget in self.budgets.items():
            summaries = budget.take(self.clock.now(), max(self.progress.interval, 1))
            self.writer.write(log, summaries, summary=True)
            self.headline.add(log, summaries, summary=True)
        for name, probe in self.probes.items():
            by_cause = self.progress.lost_by_cause[name] = probe.lost_events()
            self.progress.lost[name] = sum(by_cause.values())
        self.writer.flush()
        self.meta = self._meta()
        self.writer.write_meta(self.meta)

    def _finish(self, rings: Drainer) -> None:
        """Whatever happened, write what is known and release the probes."""
        self.interrupted = self.stop.is_set()
        try:
            with contextlib.suppress(NettrailError):
                rings.drain()
            for probe in self._running():
                self._write(probe.name, probe.final_records())
            self.ended_at = iso(dt.datetime.now(dt.timezone.utc))
            self._checkpoint()
        finally:
            rings.free()
            for probe in self.probes.values():
                probe.close()
            self.writer.close()

    def _render(self) -> None:
        """The report, at the caller's priority again: the window is over."""
        if self.opts.report and self.render:
            self.view.rendering(self)
            try:
                self.report_path = self.render(self.directory, self.dir_fd)
            except NettrailError as exc:
                self.report_error = exc.one_line()
