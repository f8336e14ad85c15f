"""The nettrail command line. Every error ends here as one line on stderr;
--debug adds the traceback and libbpf's log."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from nettrail.capture.events import MAX_PIDS
from nettrail import VERSION
from nettrail import journal
from nettrail.errors import ExitStatus, NettrailError, UsageError
from nettrail.format import DEFAULT_PROBES, MAX_COUNT, MAX_INTERVAL_S, PROBE_OPTIONS, PROBES
from nettrail.format.logs.sessions import INTERVAL_LINES
from nettrail.units import printable

if TYPE_CHECKING:  # imported where used: `capture` starts without the report's modules
    from nettrail.report.build import Baseline

PID_MAX_LIMIT = 1 << 22  # the kernel's ceiling for /proc/sys/kernel/pid_max
# A longer window needs --long: a stray number (an unquoted second PID) must
# not silently become INTERVAL and start a two-day capture
LONG_WINDOW_S = 3600.0
LONG_INTERVAL_S = 60.0

EXAMPLES = """\
examples:
  sudo nettrail capture                  5 s x 12 (one minute), live view, report.html at the end
  sudo nettrail capture 1 30 -p 1234     one process, 1 s intervals for 30 s (-p 1,2 or -p 1 -p 2)
  sudo nettrail capture -q 5 12 --probes sessions,dns -o /var/tmp/inc42 --title INC-42
  sudo nettrail check                    what this kernel and machine support
  nettrail report nettrail-20261124T101500Z-1a2b3c4d --note "checkout slow since 10:05"
  sudo nettrail schedule --cron "*/15 * * * *" --dir /var/lib/nettrail --keep 96
  sudo nettrail trigger                  capture now, in the running schedule service, and wait
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"nettrail: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(ExitStatus.USAGE)


def _finite(text: str, low: float, high: float) -> float:
    value = float(text)
    if not low < value <= high:  # NaN and inf fail too
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    return _finite(text, 0, MAX_INTERVAL_S)


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_COUNT:
        raise ValueError(text)
    return value


def _positive_number(text: str) -> float:
    return _finite(text, 0, sys.float_info.max)


def _pid_list(text: str) -> list[int]:
    """-p 1234, -p 1234,5678, or what pgrep prints (-p "$(pgrep x)": PIDs one
    a line): one flag never takes the positionals after it."""
    pids = [int(part) for part in re.split(r"[,\s]+", text.strip())]
    if not all(1 <= pid < PID_MAX_LIMIT for pid in pids):
        raise ValueError(text)
    return pids


def _probe_list(text: str) -> tuple[str, ...]:
    """Probes and probe options by name; `+NAME` alone adds to the default
    probes; an option brings its probe."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names and all(n.startswith("+") for n in names):
        names = [*DEFAULT_PROBES, *(n[1:] for n in names)]
    known = (*PROBES, *PROBE_OPTIONS)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown probe {', '.join(unknown) or '(none)'}: choose from {','.join(known)}")
    return tuple(dict.fromkeys([*names, *(PROBE_OPTIONS[n] for n in names
                                          if n in PROBE_OPTIONS)]))


# argparse names the type in "invalid <name> value"
_seconds.__name__ = "seconds"
_count.__name__ = "count"
_positive_number.__name__ = "number"
_pid_list.__name__ = "PID"


def add_window_arguments(p: argparse.ArgumentParser, interval_s: float = 5.0,
                         count: int | None = 12) -> None:
    """INTERVAL COUNT -p --probes: shared by capture, schedule and the text
    views (whose default is no COUNT: until Ctrl-C)."""
    p.add_argument("interval", nargs="?", type=_seconds, default=interval_s, metavar="INTERVAL",
                   help=f"seconds per interval (default {interval_s:g}, at most "
                        f"{MAX_INTERVAL_S:g})")
    # COUNT's default is filled in by check_window, which must know if it was given
    p.add_argument("count", nargs="?", type=_count, default=None, metavar="COUNT",
                   help=f"number of intervals (default {count or 'none: until Ctrl-C'}, "
                        f"at most {MAX_COUNT})")
    p.set_defaults(default_count=count)
    p.add_argument("-p", "--pid", dest="pids", type=_pid_list, action="extend", default=[],
                   metavar="PID", help='trace only this process; repeat -p, or PID,PID,..., '
                                       'or -p "$(pgrep NAME)"')
    p.add_argument("--pgrep", metavar="PATTERN", action="append", default=[],
                   help="trace the processes whose name matches this regular expression "
                        "now (as pgrep PATTERN would list them)")
    p.add_argument("--long", action="store_true",
                   help=f"allow a window longer than {LONG_WINDOW_S / 60:.0f} minutes "
                        f"(INTERVAL x COUNT), or an INTERVAL over {LONG_INTERVAL_S:g} s "
                        "without COUNT")
    p.add_argument("--probes", type=_probe_list, default=DEFAULT_PROBES,
                   help=f"comma-separated subset of {','.join(PROBES)} (default: "
                        f"{','.join(DEFAULT_PROBES)}); +wire adds wire-level DNS (DNS "
                        "packets of resolvers that bypass libc), +udp per-process UDP flows "
                        "(a per-packet program: docs/probes.md)")


def add_debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not undo `nettrail --debug CMD`
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on errors, show the traceback and libbpf's log")


def _add_report_text(p: argparse.ArgumentParser) -> None:
    p.add_argument("--title", help="report title, e.g. the incident or ticket")
    p.add_argument("--note", help="a note shown under the title")


def _metrics_path(text: str) -> Path:
    from nettrail.metrics import SUFFIX
    path = Path(text)
    if not path.name.endswith(SUFFIX) or path.name == SUFFIX:
        raise argparse.ArgumentTypeError(f"{text} does not end in {SUFFIX}: node_exporter's "
                                         f"textfile collector reads only NAME{SUFFIX}")
    return path


def _add_metrics_file(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--metrics-file", type=_metrics_path, metavar="PATH", help=help_text)


TEXT_VIEWS = {
    "top": ("the busiest TCP connections per interval, as text", "tcptop"),
    "life": ("a line per closed TCP session, as text", "tcplife"),
    "dns": ("a line per name lookup, as text", "gethostlatency"),
}


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value <= 65535:
        raise ValueError(text)
    return value


_port.__name__ = "port"


def _lines(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_lines.__name__ = "number of lines"


def add_filter_arguments(p: argparse.ArgumentParser, pids: bool = True) -> None:
    """Which records a text view prints; the logs keep everything."""
    f = p.add_argument_group("filters (repeat one to allow several values)")
    if pids:
        f.add_argument("-p", "--pid", dest="pids", type=_pid_list, action="extend",
                       default=[], metavar="PID", help="only these processes")
    f.add_argument("-c", "--comm", action="append", default=[],
                   help="only processes of this name (exact)")
    f.add_argument("--name", action="append", default=[],
                   help="only lookups of names containing this text (any case)")
    f.add_argument("--port", type=_port, action="append", default=[],
                   help="only connections with this local or remote port")
    f.add_argument("--netns", type=int, action="append", default=[], metavar="INODE",
                   help="only connections in this network namespace (ls -l /proc/PID/ns/net)")
    f.add_argument("--container", action="append", default=[], metavar="ID",
                   help="only processes of the container whose id starts with this")


def add_sort_arguments(p: argparse.ArgumentParser) -> None:
    from nettrail.textlines import DEFAULT_ROWS, SORT_KEYS
    p.add_argument("-s", "--sort", choices=list(SORT_KEYS), default="all",
                   help="top: order connections by these bytes (default all: rx + tx)")
    p.add_argument("-r", "--rows", type=_count, default=DEFAULT_ROWS,
                   help=f"top: connections per interval at most (default {DEFAULT_ROWS})")


def filters_of(args: argparse.Namespace, pids: bool = True):  # -> textlines.Filters
    from nettrail.textlines import Filters
    return Filters(pids=frozenset(args.pids if pids else ()), comms=frozenset(args.comm),
                   names=tuple(n.lower() for n in args.name), ports=frozenset(args.port),
                   netns=frozenset(args.netns), containers=tuple(args.container))


def add_text_view(sub: argparse._SubParsersAction, view: str, help_text: str,
                  seed: str) -> None:
    p = sub.add_parser(view, help=help_text,
                       description=f"{help_text[0].upper()}{help_text[1:]} on stdout, like "
                                   f"{seed}, line-buffered for pipes and grep, while a full "
                                   "capture runs: without COUNT until Ctrl-C; the logs and "
                                   "report.html are written as by nettrail capture (the "
                                   "directory is named on stderr at the end).")
    add_window_arguments(p, 1.0 if view == "top" else 5.0, None)
    add_filter_arguments(p, pids=False)  # -p is the capture's own: traced in the kernel
    if view == "top":
        add_sort_arguments(p)
        p.add_argument("-C", "--noclear", action="store_true",
                       help="do not clear the screen between intervals (never cleared "
                            "when stdout is not a terminal)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="capture directory (default ./nettrail-<UTC time>-<random>)")
    p.add_argument("--no-report", action="store_true", help="write the logs only")
    p.add_argument("--no-logs", action="store_true",
                   help="keep nothing: capture into a temporary directory removed at the end")
    _add_report_text(p)
    add_debug(p)
    p.set_defaults(run=cmd_text_view, view=view)


def build_parser() -> Parser:
    parser = Parser(prog="nettrail", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Capture per-process TCP bandwidth, TCP sessions and DNS "
                                "lookups with eBPF for a fixed window, and render one HTML "
                                "report.", epilog=EXAMPLES)
    parser.add_argument("--debug", action="store_true",
                        help="on errors, show the traceback and libbpf's log")
    parser.add_argument("--version", action="version", version=f"nettrail {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    cap = sub.add_parser("capture", help="capture one window now",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                         description="Attach the probes for INTERVAL x COUNT seconds, write "
                                     "raw logs (docs/format.md) and report.html into one "
                                     "directory, and print that directory last on stdout. "
                                     "Ctrl-C ends early and still leaves a complete capture.")
    add_window_arguments(cap)
    cap.add_argument("-o", "--output", type=Path, metavar="DIR",
                     help="capture directory: created 0700, or an empty one of yours "
                          "(default ./nettrail-<UTC time>-<random>)")
    cap.add_argument("--no-report", action="store_true", help="write the logs only")
    cap.add_argument("-q", "--quiet", action="store_true",
                     help="print only the capture directory")
    cap.add_argument("--session-lines", type=_lines, default=INTERVAL_LINES, metavar="N",
                     help="session lines written per interval at most; past them, sessions "
                          f"are counted in summaries (default {INTERVAL_LINES:,}; "
                          "docs/format.md)")
    cap.add_argument("--summary-json", action="store_true",
                     help="print one JSON object (directory, host, times, probe status, "
                          "headline numbers) instead of the directory")
    for flag, what in (("--container", "a container, by name (Docker, Podman, Kubernetes) or "
                                       "id (12 or more hex digits)"),
                       ("--pod", "a Kubernetes pod, by name"),
                       ("--namespace", "a Kubernetes namespace")):
        cap.add_argument(flag, dest=flag[2:] + "s", action="append", default=[],
                         metavar="NAME", help=f"keep only records of {what}; repeat for "
                                              "several (docs/probes.md: names)")
    _add_metrics_file(cap, "also write the headline numbers as Prometheus text "
                           "(node_exporter's textfile collector) to this NAME.prom")
    _add_report_text(cap)
    add_debug(cap)
    cap.set_defaults(run=cmd_capture)

    for view, (help_text, seed) in TEXT_VIEWS.items():
        add_text_view(sub, view, help_text, seed)

    shw = sub.add_parser("show", help="a finished capture's top, life or dns view as text",
                         description="Print a capture directory's logs as the text views of "
                                     "nettrail top, life and dns print them (no root needed).")
    shw.add_argument("capture_dir", type=Path, metavar="CAPTURE_DIR")
    which = shw.add_mutually_exclusive_group(required=True)
    for view in TEXT_VIEWS:
        which.add_argument(f"--{view}", dest="view", action="store_const", const=view,
                           help=f"the {view} view")
    add_filter_arguments(shw)
    add_sort_arguments(shw)
    add_debug(shw)
    shw.set_defaults(run=cmd_show)

    chk = sub.add_parser("check", help="check kernel, privileges, hooks and libcs")
    chk.add_argument("--json", action="store_true",
                     help="one JSON object: every finding with its fix, and whether all hold")
    add_debug(chk)
    chk.set_defaults(run=cmd_check)

    rep = sub.add_parser("report", help="render report.html from a capture directory, or "
                                        "one fleet report from several hosts' captures",
                         description="Render one self-contained HTML report. With several "
                                     "capture directories (one per host), one fleet report: "
                                     "one clock, a host on every process, per-host totals, "
                                     "connections matched across hosts (docs/report.md).")
    rep.add_argument("capture_dirs", nargs="+", type=Path, metavar="CAPTURE_DIR")
    rep.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="where to write (default CAPTURE_DIR/report.html; required "
                          "with several directories)")
    rep.add_argument("--baseline", nargs="+", metavar="BASE", default=[],
                     help="compare with a healthy capture: a capture directory (one per "
                          "host, matched by host name), or `auto` for a snapshot of a "
                          "schedule directory: its most recent earlier snapshot of the same "
                          "host and time of day without failures; the page's \"What "
                          "changed\" section")
    _add_report_text(rep)
    add_debug(rep)
    rep.set_defaults(run=cmd_report)

    sch = sub.add_parser("schedule", help="capture at crontab times, with retention and an index",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                         description="Run as a service: a capture into ROOT/<UTC time>/ at every "
                                     "crontab time and on `nettrail trigger` (SIGUSR1), then "
                                     "prune by retention and rewrite ROOT/index.html. SIGTERM "
                                     "finishes the capture in progress and exits 0.")
    sch.add_argument("--cron", metavar="EXPR",
                     help='5-field crontab expression, e.g. "*/15 * * * *"')
    sch.add_argument("--once", action="store_true",
                     help="instead of --cron: one snapshot now, with retention, index and "
                          "metrics, then exit 0 (written), 1 (failed) or 7 (skipped: another "
                          "capture runs); for a systemd timer")
    sch.add_argument("--dir", required=True, type=Path, metavar="ROOT",
                     help="where snapshots and index.html go")
    add_window_arguments(sch)
    sch.add_argument("--keep", type=_count, metavar="N", help="keep the newest N snapshots")
    sch.add_argument("--max-age", type=_positive_number, metavar="DAYS",
                     help="remove snapshots older than this")
    sch.add_argument("--max-disk", type=_positive_number, metavar="MB",
                     help="remove the oldest snapshots while ROOT holds more than this")
    sch.add_argument("--utc", action="store_true", help="read --cron in UTC, not local time")
    _add_metrics_file(sch, "where the Prometheus textfile goes after each run "
                           "(default ROOT/nettrail.prom)")
    sch.add_argument("--cron-seconds", help=argparse.SUPPRESS)  # tests: seconds field
    add_debug(sch)
    sch.set_defaults(run=cmd_schedule)

    trg = sub.add_parser("trigger", help="make the running schedule service capture now",
                         description="Ask the running schedule service for a capture now and "
                                     "wait until it is written (exit 0), failed (1) or skipped "
                                     "because another capture is running (7).")
    trg.add_argument("--no-wait", action="store_true",
                     help="return once the capture has started (or was skipped)")
    add_debug(trg)
    trg.set_defaults(run=cmd_trigger)
    return parser


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
                          namespaces=tuple(args.namespaces), session_lines=args.session_lines)
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
                              note=args.note)
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
                          probes=args.probes)
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


def check_window(parser: Parser, args: argparse.Namespace) -> None:
    """A stray number (an unquoted second PID) must not become INTERVAL: an
    INTERVAL over LONG_INTERVAL_S needs its COUNT given, a window over
    LONG_WINDOW_S needs --long. Then COUNT's default."""
    if not hasattr(args, "default_count"):
        return
    if_pid = (f'; if {args.interval:g} is a PID, quote the list (-p "$(pgrep NAME)") or use '
              f"--pgrep NAME")
    if args.count is None and args.default_count:
        if args.interval > LONG_INTERVAL_S and not args.long:
            parser.error(f"INTERVAL {args.interval:g} s without COUNT: give COUNT too if that "
                         f"is meant{if_pid}")
        args.count = args.default_count
    if args.count is None or args.long:
        return  # open-ended text views run until Ctrl-C, in the user's sight
    seconds = args.interval * args.count
    if seconds > LONG_WINDOW_S:
        parser.error(f"a {args.interval:g} s x {args.count} window lasts {seconds / 3600:.1f} h: "
                     f"add --long if that is meant{if_pid}")


def check_pids(parser: Parser, args: argparse.Namespace) -> None:
    """At most MAX_PIDS distinct processes, each one that exists now."""
    if not hasattr(args, "pids"):
        return
    if getattr(args, "pgrep", None):
        from nettrail.procs import pgrep
        try:
            args.pids += pgrep(args.pgrep, exclude=os.getpid())
        except ValueError as exc:
            parser.error(str(exc))
    args.pids = list(dict.fromkeys(args.pids))
    if len(args.pids) > MAX_PIDS:
        parser.error(f"at most {MAX_PIDS} -p PIDs")
    missing = [pid for pid in args.pids if not os.path.exists(f"/proc/{pid}")]
    if missing:
        parser.error(f"no process with PID {', '.join(map(str, missing))}")


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_window(parser, args)
    check_pids(parser, args)
    library_messages_as_one_line()
    try:
        return int(args.run(args))
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
