"""The nettrail command line. Every error ends here as one line on stderr;
--debug adds the traceback and libbpf's log."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from nettrail.capture.events import MAX_PIDS
from nettrail import VERSION
from nettrail.errors import ExitStatus, NettrailError
from nettrail.logformat import PROBE_OPTIONS, PROBES

EXAMPLES = """\
examples:
  sudo nettrail capture                  5 s x 12 (one minute), live view, report.html at the end
  sudo nettrail capture 1 30 -p 1234     one process, 1 s intervals for 30 s
  sudo nettrail capture -q 5 12 --probes sessions,dns -o /var/tmp/inc42 --title INC-42
  sudo nettrail check                    what this kernel and machine support
  nettrail report nettrail-20261124T101500Z --note "checkout slow since 10:05"
  sudo nettrail schedule --cron "*/15 * * * *" --dir /var/lib/nettrail --keep 96
  sudo nettrail trigger                  capture now, in the running schedule service
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"nettrail: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(ExitStatus.USAGE)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _probe_list(text: str) -> tuple[str, ...]:
    """Probes and probe options by name; `+NAME` alone adds to all probes;
    an option brings its probe."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names and all(n.startswith("+") for n in names):
        names = [*PROBES, *(n[1:] for n in names)]
    known = (*PROBES, *PROBE_OPTIONS)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown probe {', '.join(unknown) or '(none)'}: choose from {','.join(known)}")
    return tuple(dict.fromkeys([*names, *(PROBE_OPTIONS[n] for n in names
                                          if n in PROBE_OPTIONS)]))


_positive_float.__name__ = "seconds"
_positive_int.__name__ = "count"


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    """INTERVAL COUNT -p --probes: shared by capture and schedule."""
    p.add_argument("interval", nargs="?", type=_positive_float, default=5.0,
                   metavar="INTERVAL", help="seconds per interval (default 5)")
    p.add_argument("count", nargs="?", type=_positive_int, default=12, metavar="COUNT",
                   help="number of intervals (default 12)")
    p.add_argument("-p", "--pid", dest="pids", type=_positive_int, nargs="+", action="extend",
                   default=[], metavar="PID", help="trace only these processes")
    p.add_argument("--probes", type=_probe_list, default=PROBES,
                   help=f"comma-separated subset of {','.join(PROBES)} (default: all); "
                        "+wire adds wire-level DNS (DNS packets of resolvers that bypass "
                        "libc)")


def add_debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not undo `nettrail --debug CMD`
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on errors, show the traceback and libbpf's log")


def _add_report_text(p: argparse.ArgumentParser) -> None:
    p.add_argument("--title", help="report title, e.g. the incident or ticket")
    p.add_argument("--note", help="a note shown under the title")


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
                     help="capture directory (default ./nettrail-<UTC time>)")
    cap.add_argument("--no-report", action="store_true", help="write the logs only")
    cap.add_argument("-q", "--quiet", action="store_true",
                     help="print only the capture directory")
    _add_report_text(cap)
    add_debug(cap)
    cap.set_defaults(run=cmd_capture)

    chk = sub.add_parser("check", help="check kernel, privileges, hooks and libcs")
    add_debug(chk)
    chk.set_defaults(run=cmd_check)

    rep = sub.add_parser("report", help="render report.html from a capture directory")
    rep.add_argument("capture_dir", type=Path, metavar="CAPTURE_DIR")
    rep.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="where to write (default CAPTURE_DIR/report.html)")
    _add_report_text(rep)
    add_debug(rep)
    rep.set_defaults(run=cmd_report)

    sch = sub.add_parser("schedule", help="capture at crontab times, with retention and an index",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                         description="Run as a service: a capture into ROOT/<UTC time>/ at every "
                                     "crontab time and on `nettrail trigger` (SIGUSR1), then "
                                     "prune by retention and rewrite ROOT/index.html. SIGTERM "
                                     "finishes the capture in progress and exits 0.")
    sch.add_argument("--cron", required=True, metavar="EXPR",
                     help='5-field crontab expression, e.g. "*/15 * * * *"')
    sch.add_argument("--dir", required=True, type=Path, metavar="ROOT",
                     help="where snapshots and index.html go")
    add_window_arguments(sch)
    sch.add_argument("--keep", type=_positive_int, metavar="N", help="keep the newest N snapshots")
    sch.add_argument("--max-age", type=_positive_float, metavar="DAYS",
                     help="remove snapshots older than this")
    sch.add_argument("--max-disk", type=_positive_float, metavar="MB",
                     help="remove the oldest snapshots while ROOT holds more than this")
    sch.add_argument("--utc", action="store_true", help="read --cron in UTC, not local time")
    sch.add_argument("--cron-seconds", help=argparse.SUPPRESS)  # tests: seconds field
    add_debug(sch)
    sch.set_defaults(run=cmd_schedule)

    trg = sub.add_parser("trigger", help="make the running schedule service capture now")
    add_debug(trg)
    trg.set_defaults(run=cmd_trigger)
    return parser


def install_stop_handlers() -> threading.Event:
    """Ctrl-C and SIGTERM end the window early; the capture is still finished."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def render_report(directory: Path, title: str | None = None, note: str | None = None,
                  output: Path | None = None) -> Path:
    from nettrail.report.build import write_report
    return write_report(directory, output=output, title=title, note=note)


def cmd_capture(args: argparse.Namespace) -> int:
    from nettrail.capture.live import LineView, LiveView, QuietView
    from nettrail.capture.window import Capture, CaptureOptions

    opts = CaptureOptions(interval_s=args.interval, count=args.count, out_dir=args.output,
                          pids=tuple(args.pids), probes=args.probes,
                          report=not args.no_report, title=args.title, note=args.note)
    view = (QuietView() if args.quiet else LiveView() if sys.stderr.isatty() else LineView())
    directory = Capture(opts, view, install_stop_handlers(), render_report).run()
    print(directory, flush=True)
    return ExitStatus.OK


def cmd_check(args: argparse.Namespace) -> int:
    from nettrail.capture.check import run_check
    findings = run_check()
    for f in findings:
        mark = "ok" if f.ok else "PROBLEM"
        print(f"{f.what:<11} {mark:<8} {f.value}" + (f"  -> {f.fix}" if f.fix else ""))
    return ExitStatus.OK if all(f.ok for f in findings) else ExitStatus.UNSUPPORTED


def cmd_report(args: argparse.Namespace) -> int:
    print(render_report(args.capture_dir, args.title, args.note, args.output))
    return ExitStatus.OK


def cmd_schedule(args: argparse.Namespace) -> int:
    from nettrail.schedule.crontab import crontab_trigger
    from nettrail.capture.preflight import require_capture_ok
    from nettrail.schedule.service import Retention, ScheduleService
    from nettrail.capture.window import CaptureOptions

    trigger = crontab_trigger(args.cron, args.utc, args.cron_seconds)  # usage errors first
    require_capture_ok()
    opts = CaptureOptions(interval_s=args.interval, count=args.count, pids=tuple(args.pids),
                          probes=args.probes)
    retention = Retention(args.keep, args.max_age, args.max_disk)
    return ScheduleService(args.dir, opts, retention, trigger, render_report).run()


def cmd_trigger(args: argparse.Namespace) -> int:
    from nettrail.hostlock import service_pid
    pid = service_pid()
    os.kill(pid, signal.SIGUSR1)
    print(f"nettrail: asked the schedule service (pid {pid}) for a capture now")
    return ExitStatus.OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(getattr(args, "pids", ())) > MAX_PIDS:
        parser.error(f"at most {MAX_PIDS} -p PIDs")
    try:
        return int(args.run(args))
    except NettrailError as exc:
        print(f"nettrail: {exc.one_line()}", file=sys.stderr)
        status = int(exc.status)
    except Exception as exc:  # a bug: still one line, details with --debug
        print(f"nettrail: internal error: {type(exc).__name__}: {exc} "
              f"(run with --debug for the traceback)", file=sys.stderr)
        status = int(ExitStatus.ERROR)
    if args.debug:
        traceback.print_exc()
        from nettrail.capture.libbpf import log
        print("\n".join(["--- libbpf log ---", *log]), file=sys.stderr)
    return status


def entry() -> None:
    sys.exit(main())
