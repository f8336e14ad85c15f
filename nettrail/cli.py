"""The nettrail command line. Every error ends here as one line on stderr;
--debug adds the traceback and libbpf's log."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import shutil
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nettrail import journal
from nettrail.arguments import TEXT_VIEWS, filters_of, parse
from nettrail.errors import ExitStatus, NettrailError, UsageError
from nettrail.format import MAX_COUNT
from nettrail.units import printable

if TYPE_CHECKING:  # imported where used: `capture` starts without the report's modules
    from nettrail.report.build import Baseline

def install_stop_handlers() -> threading.Event:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed) end the window early;
    the capture is still finished, its report written."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def render_report(directory: Path | list[Path], title: str | None = None,
                  note: str | None = None, output: Path | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  dir_fd: int | None = None,
                  baselines: list[Baseline] | None = None) -> Path:
    from nettrail.report.build import write_report
    return write_report(directory, output=output, title=title, note=note, cancelled=cancelled,
                        dir_fd=dir_fd, baselines=baselines)


def capture_report(directory: Path, dir_fd: int) -> Path:
    """A capture's own report, through its directory's fd."""
    return render_report(directory, dir_fd=dir_fd)


def cmd_capture(args: argparse.Namespace) -> int:
    from nettrail.capture.live import LineView, LiveView, QuietView, keys, terminal_of_our_own
    from nettrail.capture.window import Capture, CaptureOptions
    from nettrail.metrics import check_textfile_dir

    opts = CaptureOptions(interval_s=args.interval, count=args.count, out_dir=args.output,
                          pids=tuple(args.pids), probes=args.probes,
                          report=not args.no_report, title=args.title, note=args.note,
                          containers=tuple(args.containers), pods=tuple(args.pods),
                          namespaces=tuple(args.namespaces), session_lines=args.session_lines,
                          nice=args.nice)
    if args.metrics_file:
        check_textfile_dir(args.metrics_file)  # before capturing, not after
    live = not args.quiet and sys.stderr.isatty()
    with contextlib.ExitStack() as terminal:
        view: object = QuietView() if args.quiet else LineView()
        if live:
            terminal.enter_context(terminal_of_our_own(sys.stderr))
            view = LiveView(keys=terminal.enter_context(keys(sys.stdin)))
        capture = Capture(opts, view, install_stop_handlers(), capture_report)
        directory = capture.run()
    print(capture_summary(directory, capture.report_path, capture.meta) if args.summary_json
          else directory, flush=True)
    if args.metrics_file:
        write_metrics(directory, args.metrics_file)
    return ExitStatus.OK


def write_metrics(directory: Path, path: Path) -> None:
    """--metrics-file: this capture's numbers; it finished, so it is the last success."""
    from nettrail.metrics import Runs, exposition, write_textfile
    from nettrail.schedule.snapshots import read_snapshot
    _, numbers = read_snapshot(directory)
    write_textfile(path, exposition(numbers, Runs(last_success_s=numbers.ended_s,
                                                  last_run_s={"ok": numbers.started_s})))


def cmd_text_view(args: argparse.Namespace) -> int:
    """nettrail top|life|dns: a capture whose stdout is a text view."""
    import tempfile
    from nettrail.capture.text import TextView
    from nettrail.capture.window import Capture, CaptureOptions

    with contextlib.ExitStack() as stack:
        out_dir = args.output
        if args.no_logs:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nettrail-")))
        opts = CaptureOptions(interval_s=args.interval, count=args.count or MAX_COUNT,
                              open_ended=args.count is None, out_dir=out_dir,
                              pids=tuple(args.pids), probes=args.probes,
                              report=not (args.no_report or args.no_logs), title=args.title,
                              note=args.note, nice=args.nice)
        clear = args.view == "top" and not args.noclear and sys.stdout.isatty()
        view = TextView(args.view, filters_of(args, pids=False), getattr(args, "sort", "all"),
                        getattr(args, "rows", 20), clear)
        Capture(opts, view, install_stop_handlers(), capture_report).run()
    return ExitStatus.OK


def cmd_show(args: argparse.Namespace) -> int:
    """A finished capture's text view, read through the report's reader."""
    from nettrail.report.reader import open_capture
    from nettrail.textlines import HEADERS, LINE_VIEWS, VIEWS, top_snapshot
    capture = open_capture(args.capture_dir)
    filters = filters_of(args)
    records = (r for r in capture.records(VIEWS[args.view]) if filters.match(r))
    if args.view == "top":
        count = capture.meta.get("count")
        for interval, rows in itertools.groupby(records, key=lambda r: r["interval"]):
            rows = list(rows)
            ts = max(r["ts"] for r in rows)
            print("\n".join(["", *top_snapshot(rows, ts, interval, count, args.sort,
                                                 args.rows)]), flush=True)
    else:
        print(HEADERS[args.view], flush=True)
        line = LINE_VIEWS[args.view]
        for r in records:
            if (text := line(r)) is not None:
                print(text, flush=True)
    for warning in capture.warnings:
        print(f"nettrail: warning: {printable(warning)}", file=sys.stderr)
    return ExitStatus.OK


def capture_summary(directory: Path, report: Path | None, meta: dict) -> str:
    """--summary-json: what scripts and playbooks want to know of a finished
    capture, as its meta.json says it (one line of JSON; `meta` as the
    capture wrote it last, not read back through the path)."""
    from nettrail import jsonio
    return jsonio.dumps({
        "directory": str(directory), "report": str(report) if report else None,
        "host": meta["host"],
        "started_at": meta["started_at"], "ended_at": meta["ended_at"],
        "intervals_done": meta["intervals_done"], "interrupted": meta["interrupted"],
        "probes": {name: {"status": p["status"], "error": p["error"]}
                   for name, p in meta["probes"].items()},
        "lost_events": meta["lost_events"], "summary": meta["summary"]}).decode()


def cmd_check(args: argparse.Namespace) -> int:
    from nettrail.capture.check import run_check
    from nettrail.capture.check import check_json, check_lines
    findings = run_check()
    if args.json:
        print(check_json(findings))
    else:
        columns = shutil.get_terminal_size().columns if sys.stdout.isatty() else 100
        print("\n".join(check_lines(findings, columns)))
    if all(f.ok for f in findings):
        return ExitStatus.OK
    privileged = all(f.ok for f in findings if f.what == "privileges")
    return ExitStatus.UNSUPPORTED if privileged else ExitStatus.NO_PRIVILEGE


def cmd_report(args: argparse.Namespace) -> int:
    baselines = _baselines(args.capture_dirs, args.baseline)
    try:
        print(render_report(args.capture_dirs, args.title, args.note, args.output,
                            baselines=baselines))
    finally:
        for base in baselines:
            if base.dir_fd is not None:
                os.close(base.dir_fd)
    return ExitStatus.OK


def _baselines(directories: list[Path], given: list[str]) -> list[Baseline]:
    """--baseline: each BASE with why it is the baseline (`auto`: per capture,
    its directory open)."""
    from nettrail.report.build import Baseline
    if given == ["auto"]:
        from nettrail.schedule.baseline import pick
        picked: list[Baseline] = []
        try:
            for directory in directories:
                picked.append(pick(directory))
        except BaseException:
            for base in picked:
                os.close(base.dir_fd)
            raise
        return picked
    if "auto" in given:
        raise UsageError("--baseline auto stands alone",
                         "give either `auto` or the baseline capture directories")
    return [Baseline(Path(base), "given on the command line (--baseline)") for base in given]


def cmd_schedule(args: argparse.Namespace) -> int:
    from nettrail.schedule.crontab import crontab_trigger
    from nettrail.capture.preflight import require_capture_ok
    from nettrail.schedule.service import Retention, ScheduleService
    from nettrail.capture.window import CaptureOptions

    if args.once == bool(args.cron):
        raise UsageError("schedule needs either --cron EXPR or --once",
                         'a service: --cron "*/15 * * * *"; a timer\'s oneshot: --once')
    trigger = (crontab_trigger(args.cron, args.utc, args.cron_seconds)  # usage errors first
               if args.cron else None)
    require_capture_ok()
    opts = CaptureOptions(interval_s=args.interval, count=args.count, pids=tuple(args.pids),
                          probes=args.probes, nice=args.nice)
    retention = Retention(args.keep, args.max_age, args.max_disk)
    service = ScheduleService(args.dir, opts, retention, trigger, render_report,
                              metrics_file=args.metrics_file)
    return service.once() if args.once else service.run()


class CaptureSkipped(NettrailError):
    """The service answered that another capture holds the host lock."""

    status = ExitStatus.BUSY


def cmd_trigger(args: argparse.Namespace) -> int:
    from nettrail.schedule.trigger import ask_for_capture
    answers = ask_for_capture()
    print("nettrail: asked the schedule service for a capture now", flush=True)
    for answer in answers:
        outcome, _, detail = answer.partition(" ")
        if outcome == "skipped":
            raise CaptureSkipped(f"the schedule service skipped the capture: {detail}",
                                 "try again when that capture has finished")
        if outcome == "failed":
            raise NettrailError(f"the schedule service's capture failed: {detail}",
                                "see the service's log (journalctl -u nettrail-schedule)")
        print(f"nettrail: {outcome} {detail}", flush=True)
        if outcome == "written" or args.no_wait:
            return ExitStatus.OK
    raise NettrailError("the schedule service stopped before the capture ended",
                        "see the service's log (journalctl -u nettrail-schedule)")


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return journal.prefixed(f"nettrail: {record.name}: {printable(record.getMessage())}",
                                journal.ERR if record.levelno >= logging.ERROR
                                else journal.WARNING, journal.is_journal(sys.stderr))


def library_messages_as_one_line() -> None:
    """Library warnings and log messages may quote untrusted text: one
    escaped line each, like every other message."""
    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        print(journal.prefixed(f"nettrail: warning: {printable(message)}", journal.WARNING,
                               journal.is_journal(sys.stderr)), file=sys.stderr)
    warnings.showwarning = show
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def _error(line: str) -> None:
    """The one line of a command that failed: an error in the journal."""
    print(journal.prefixed(line, journal.ERR, journal.is_journal(sys.stderr)), file=sys.stderr)


# by subcommand (the parser's `command`); every text view is one command
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "capture": cmd_capture, "show": cmd_show, "check": cmd_check, "report": cmd_report,
    "schedule": cmd_schedule, "trigger": cmd_trigger, **dict.fromkeys(TEXT_VIEWS, cmd_text_view)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    library_messages_as_one_line()
    try:
        return int(COMMANDS[args.command](args))
    except NettrailError as exc:
        _error(f"nettrail: {printable(exc.one_line())}")
        status = int(exc.status)
    except KeyboardInterrupt:  # a capture window takes Ctrl-C itself and exits 0
        _error("nettrail: interrupted")
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: still one line, details with --debug
        _error(f"nettrail: internal error: {printable(f'{type(exc).__name__}: {exc}')} "
               f"(run with --debug for the traceback)")
        status = int(ExitStatus.ERROR)
    if args.debug:
        traceback.print_exc()
        from nettrail.capture.libbpf_log import log
        print("\n".join(["--- libbpf log ---", *log]), file=sys.stderr)
    return status


def entry() -> None:
    sys.exit(main())
