"""`nettrail schedule`: a capture at every crontab time (and on SIGUSR1 /
`nettrail trigger`), written under ROOT with its report, pruned by retention,
listed in ROOT/index.html.

Signals are taken synchronously (sigwait in the main thread) while APScheduler
runs jobs in its own threads: no scheduler state is touched from a signal
handler. One line per event goes to stderr, for journald."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from nettrail.hostlock import CaptureBusy, service_pid_file
from nettrail.capture.live import QuietView
from nettrail.capture.window import Capture, CaptureOptions
from nettrail.errors import NettrailError
from nettrail.schedule.snapshots import (Headline, headline, snapshot_dirs, snapshot_name,
                              update_index)
from nettrail.units import human_bytes

WATCHED = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}
MISFIRE_GRACE_S = 60


@dataclass(frozen=True)
class Retention:
    keep: int | None = None
    max_age_days: float | None = None
    max_disk_mb: float | None = None


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune(root: Path, retention: Retention, current: Path | None) -> list[Path]:
    """Remove the oldest snapshots beyond the limits; never `current`."""
    snapshots = snapshot_dirs(root)  # newest first
    doomed: list[Path] = []
    if retention.keep is not None:
        doomed += snapshots[retention.keep:]
    if retention.max_age_days is not None:
        cutoff = (dt.datetime.now(dt.timezone.utc)
                  - dt.timedelta(days=retention.max_age_days)).strftime("%Y%m%dT%H%M%SZ")
        doomed += [p for p in snapshots if p.name[:16] < cutoff]
    if retention.max_disk_mb is not None:
        sizes = {p: _size(p) for p in snapshots}
        total, limit = sum(sizes.values()), retention.max_disk_mb * 1024 * 1024
        for p in reversed(snapshots):
            if total <= limit:
                break
            doomed.append(p)
            total -= sizes[p]
    removed = []
    for p in dict.fromkeys(doomed):
        if p != current:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


class ScheduleService:
    def __init__(self, root: Path, options: CaptureOptions, retention: Retention,
                 trigger: CronTrigger, render: Callable[[Path], Path],
                 log: TextIO = sys.stderr) -> None:
        self.root = root
        self.options = options
        self.retention = retention
        self.trigger = trigger
        self.render = render
        self.out = log
        self.stop = threading.Event()

    def log(self, message: str) -> None:
        print(f"nettrail schedule: {message}", file=self.out, flush=True)

    def snapshot(self, trigger: str) -> None:
        """One capture into a new directory, then retention and the index."""
        directory = snapshot_name(self.root, dt.datetime.now(dt.timezone.utc))
        opts = dataclasses.replace(self.options, out_dir=directory, trigger=trigger)
        self.log(f"started {trigger} capture into {directory}")
        written: Headline | None = None
        try:
            Capture(opts, QuietView(), self.stop, self.render).run()
        except CaptureBusy as exc:
            self.log(f"skipped {trigger} capture: {exc.problem}")
            return
        except NettrailError as exc:
            self.log(f"failed {trigger} capture into {directory}: {exc.one_line()}")
        except Exception as exc:  # keep the service alive; say what broke
            self.log(f"failed {trigger} capture into {directory}: internal error: "
                     f"{type(exc).__name__}: {exc}")
        else:
            written = headline(directory)
            self.log(f"written {directory}: {self._numbers(written)}")
        self._tidy(directory, written)

    @staticmethod
    def _numbers(h: Headline) -> str:
        return (f"in {human_bytes(h.rx_bytes)}, out {human_bytes(h.tx_bytes)}, "
                f"{h.sessions} sessions, {h.lookups} lookups ({h.failed_lookups} failed), "
                f"slowest {h.slowest or '-'}, {h.lost_events} lost events"
                + ("" if not h.interrupted else ", interrupted"))

    def _tidy(self, current: Path, written: Headline | None = None) -> None:
        try:
            for path in prune(self.root, self.retention, current):
                self.log(f"pruned {path}")
            update_index(self.root, written)
        except (OSError, NettrailError) as exc:
            self.log(f"index not updated: {exc}")

    def _on_skip(self, event: JobEvent) -> None:
        why = ("the previous capture is still running" if event.code == EVENT_JOB_MAX_INSTANCES
               else f"missed its time by more than {MISFIRE_GRACE_S} s")
        self.log(f"skipped scheduled capture: {why}")

    def run(self) -> int:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with service_pid_file():
            signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # threads inherit this
            scheduler = BackgroundScheduler(timezone=self.trigger.timezone, job_defaults={
                "max_instances": 1, "coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S})
            scheduler.add_job(self.snapshot, self.trigger, args=["scheduled"], id="scheduled")
            scheduler.add_listener(self._on_skip, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
            scheduler.start()
            next_run = scheduler.get_job("scheduled").next_run_time
            self.log(f"running: snapshots into {self.root}, next at {next_run}")
            while (sig := signal.sigwait(WATCHED)) == signal.SIGUSR1:
                self.log("trigger received")
                scheduler.add_job(self.snapshot, args=["triggered"], misfire_grace_time=None)
            self.log(f"{signal.Signals(sig).name} received: finishing the capture in progress")
            self.stop.set()
            started = time.monotonic()
            scheduler.shutdown(wait=True)
            self.log(f"stopped after {time.monotonic() - started:.1f} s")
        return 0
