"""`nettrail schedule`: a capture at every crontab time (and on SIGUSR1 /
`nettrail trigger`), written under ROOT with its report, pruned by retention,
listed in ROOT/index.html.

Signals are taken synchronously (sigwait in the main thread) while APScheduler
runs jobs in its own threads: no scheduler state is touched from a signal
handler. `nettrail trigger` asks over a unix socket (schedule/trigger.py) and
is answered when its capture starts and ends, or is skipped. One line per
event goes to stderr, for journald, every line through units.printable and
with its priority (nettrail/journal.py); readiness through sd_notify. After
each run the metrics textfile is rewritten (nettrail/metrics.py).

`--once` (a systemd timer's oneshot service) takes one snapshot the same way,
with retention, index and metrics, and exits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from apscheduler.events import (EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent,
                                JobSubmissionEvent)
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from nettrail.hostlock import service_pid_file
from nettrail.capture.live import QuietView
from nettrail.capture.window import Capture, CaptureOptions
from nettrail import journal
from nettrail.errors import CaptureBusy, ExitStatus, NettrailError
from nettrail.files import OutputDir
from nettrail.metrics import Snapshot, exposition, write_textfile
from nettrail.schedule.snapshots import (NAME_TIME, Headline, failed_headline, read_snapshot,
                                         runs, snapshot_dirs, snapshot_name, update_index)
from nettrail.schedule.trigger import Reply, TriggerListener
from nettrail.units import human_bytes, printable

# SIGHUP (the terminal went away) ends the service like SIGTERM
WATCHED = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
RENDER_GRACE_S = 15.0  # of the unit's TimeoutStopSec=30
MISFIRE_GRACE_S = 60


@dataclass(frozen=True)
class Retention:
    keep: int | None = None
    max_age_days: float | None = None
    max_disk_mb: float | None = None


def _size(root_fd: int, name: str) -> int:
    """Bytes in a snapshot's files; symlinks are not followed."""
    total = 0
    for _, _, files, dir_fd in os.fwalk(name, dir_fd=root_fd):
        for f in files:
            st = os.stat(f, dir_fd=dir_fd, follow_symlinks=False)
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def _doomed(snapshots: list[Path], retention: Retention, root_fd: int) -> list[Path]:
    """Snapshots (newest first) beyond the retention limits, oldest last."""
    doomed: list[Path] = []
    if retention.keep is not None:
        doomed += snapshots[retention.keep:]
    if retention.max_age_days is not None:
        cutoff = (dt.datetime.now(dt.timezone.utc)
                  - dt.timedelta(days=retention.max_age_days)).strftime(NAME_TIME)
        doomed += [p for p in snapshots if p.name[:16] < cutoff]
    if retention.max_disk_mb is not None:
        sizes = {p: _size(root_fd, p.name) for p in snapshots}
        total, limit = sum(sizes.values()), retention.max_disk_mb * 1024 * 1024
        for p in reversed(snapshots):
            if total <= limit:
                break
            doomed.append(p)
            total -= sizes[p]
    return list(dict.fromkeys(doomed))


def prune(root: Path, retention: Retention, current: Path | None,
          log: Callable[[str], None]) -> list[Path]:
    """Remove the oldest snapshots beyond the limits, never `current`, and
    nothing that is not a snapshot (snapshot_dirs). Removal goes through the
    root's fd and never follows a symlink; only what was removed is returned."""
    snapshots = snapshot_dirs(root)  # newest first
    removed = []
    with OutputDir.private(root, empty=False) as out:
        for p in _doomed(snapshots, retention, out.fd):
            if p == current:
                continue
            try:
                shutil.rmtree(p.name, dir_fd=out.fd)
            except OSError as exc:
                log(f"could not prune {p}: {exc.strerror}")
            else:
                removed.append(p)
    return removed


class _Answering(QuietView):
    """Tells a waiting `nettrail trigger` that its capture has started."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def begin(self, capture: Capture) -> None:
        self.reply(f"started {capture.directory}")


def _nobody(line: str) -> None:
    """The reply for captures nobody waits on (cron times, SIGUSR1)."""


# what a run's outcome exits with under --once
ONCE_STATUS = {"ok": ExitStatus.OK, "failed": ExitStatus.ERROR, "skipped": ExitStatus.BUSY}


class ScheduleService:
    def __init__(self, root: Path, options: CaptureOptions, retention: Retention,
                 trigger: CronTrigger | None, render: Callable[..., Path],
                 log: TextIO = sys.stderr, metrics_file: Path | None = None) -> None:
        """`render(directory, cancelled=..., dir_fd=...)` writes a capture's
        report through the directory's fd; `trigger` None: only --once.
        Metrics go to ROOT/nettrail.prom unless `metrics_file` says where."""
        self.root = root
        self.options = options
        self.retention = retention
        self.trigger = trigger
        self.render = render
        self.out = log
        self.journal = journal.is_journal(log)
        self.metrics_file = metrics_file or root / "nettrail.prom"
        self.stop = threading.Event()
        self._stopping_since = 0.0
        self._index_lock = threading.Lock()
        self._newest: Snapshot | None = None  # the last written snapshot's numbers

    def log(self, message: str, priority: int = journal.INFO) -> None:
        # hostnames, paths and errors come from other processes: one line each, escaped
        print(journal.prefixed(f"nettrail schedule: {printable(message)}", priority,
                               self.journal), file=self.out, flush=True)

    def snapshot(self, trigger: str, reply: Reply = _nobody) -> str:
        """One capture into a new directory, then retention, the index and the
        metrics; its status (ok / failed / skipped)."""
        directory = snapshot_name(self.root, dt.datetime.now(dt.timezone.utc))
        opts = dataclasses.replace(self.options, out_dir=directory, trigger=trigger)
        self.log(f"started {trigger} capture into {directory}")
        try:
            Capture(opts, _Answering(reply), self.stop,
                    lambda d, fd: self.render(d, cancelled=self._render_overdue,
                                              dir_fd=fd)).run()
        except CaptureBusy as exc:
            self.log(f"skipped {trigger} capture: {exc.problem}", journal.WARNING)
            reply(f"skipped {exc.problem}")
            self._update_index(failed_headline(directory, "skipped", trigger, exc.problem))
            return "skipped"
        except NettrailError as exc:
            written = self._failed(trigger, directory, exc.one_line(), reply)
        except Exception as exc:  # keep the service alive; say what broke
            written = self._failed(trigger, directory,
                                   f"internal error: {type(exc).__name__}: {exc}", reply)
        else:
            written, self._newest = read_snapshot(directory)
            self.log(f"written {directory}: {self._numbers(written)}")
            reply(f"written {directory}: {self._numbers(written)}")
        self._update_index(written, directory)
        return "failed" if written.status == "failed" else "ok"

    def _render_overdue(self) -> bool:
        """A report still rendering RENDER_GRACE_S after SIGTERM is given up
        (its logs stay): the service stops within systemd's stop timeout."""
        return self.stop.is_set() and time.monotonic() - self._stopping_since > RENDER_GRACE_S

    def _failed(self, trigger: str, directory: Path, why: str, reply: Reply) -> Headline:
        self.log(f"failed {trigger} capture into {directory}: {why}", journal.ERR)
        reply(f"failed {why}")
        return failed_headline(directory, "failed", trigger, why)

    @staticmethod
    def _numbers(h: Headline) -> str:
        return (f"in {human_bytes(h.rx_bytes)}, out {human_bytes(h.tx_bytes)}, "
                f"{h.sessions} sessions, {h.lookups} lookups ({h.failed_lookups} failed), "
                f"slowest {h.slowest or '-'}, {h.lost_events} lost events"
                + ("" if not h.interrupted else ", interrupted"))

    def _update_index(self, written: Headline | None, current: Path | None = None) -> None:
        """Retention (after a run: `current`), then the index, then the
        metrics; one at a time (a skip is noted while another run may be
        finishing). A skip only notes itself: nothing new to prune."""
        try:
            with self._index_lock:
                if current is not None:
                    for path in prune(self.root, self.retention, current,
                                      lambda line: self.log(line, journal.WARNING)):
                        self.log(f"pruned {path}")
                headlines = update_index(self.root, written)
        except NettrailError as exc:
            self.log(f"index not updated: {exc.one_line()}", journal.ERR)
            return
        except Exception as exc:  # the next run tries again: never a traceback per run
            self.log(f"index not updated: {type(exc).__name__}: {exc}", journal.ERR)
            return
        try:
            write_textfile(self.metrics_file, exposition(self._newest, runs(headlines)))
        except NettrailError as exc:
            self.log(f"metrics not written: {exc.one_line()}", journal.ERR)
        except Exception as exc:  # as for the index: one line, the next run tries again
            self.log(f"metrics not written: {type(exc).__name__}: {exc}", journal.ERR)

    def _on_skip(self, event: JobEvent) -> None:
        why = ("the previous capture is still running" if event.code == EVENT_JOB_MAX_INSTANCES
               else f"missed its time by more than {MISFIRE_GRACE_S} s")
        self.log(f"skipped scheduled capture: {why}", journal.WARNING)
        # a skip is a submission event (its run times), a miss an execution event
        when = (event.scheduled_run_times[-1] if isinstance(event, JobSubmissionEvent)
                else event.scheduled_run_time)
        self._update_index(failed_headline(snapshot_name(self.root, when), "skipped",
                                           "scheduled", why))

    def _queue_triggered(self, scheduler: BackgroundScheduler, reply: Reply = _nobody) -> None:
        self.log("trigger received")
        scheduler.add_job(self.snapshot, args=["triggered", reply], misfire_grace_time=None)

    def once(self) -> int:
        """One snapshot now (--once), then exit: 0 written, 1 failed, 7
        skipped. SIGTERM, SIGINT and SIGHUP end the window early, as in
        `capture`."""
        OutputDir.private(self.root, empty=False).close()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: self._stopping())
        return ONCE_STATUS[self.snapshot("scheduled")]

    def _stopping(self) -> None:
        if not self.stop.is_set():
            self._stopping_since = time.monotonic()
            self.stop.set()

    def run(self) -> int:
        OutputDir.private(self.root, empty=False).close()  # made 0700, or checked
        with service_pid_file():
            signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # threads inherit this
            # skips and misses are logged (and noted in the index) by _on_skip
            logging.getLogger("apscheduler").setLevel(logging.ERROR)
            scheduler = BackgroundScheduler(timezone=self.trigger.timezone, job_defaults={
                "max_instances": 1, "coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S})
            scheduler.add_job(self.snapshot, self.trigger, args=["scheduled"], id="scheduled")
            scheduler.add_listener(self._on_skip, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
            scheduler.start()
            listener = TriggerListener(lambda reply: self._queue_triggered(scheduler, reply))
            listener.start()
            next_run = scheduler.get_job("scheduled").next_run_time
            self.log(f"running: snapshots into {self.root}, next at {next_run}", journal.NOTICE)
            journal.notify(f"READY=1\nSTATUS=snapshots into {printable(self.root)}")
            while (sig := signal.sigwait(WATCHED)) == signal.SIGUSR1:
                self._queue_triggered(scheduler)
            journal.notify("STOPPING=1")
            self.log(f"{signal.Signals(sig).name} received: finishing the capture in progress",
                     journal.NOTICE)
            listener.close()
            self._stopping()
            started = time.monotonic()
            scheduler.shutdown(wait=True)
            self.log(f"stopped after {time.monotonic() - started:.1f} s", journal.NOTICE)
        return 0
