"""The nettrail command line's arguments: the parser, its types and its
checks of what was given (nettrail/cli.py dispatches the parsed command).
A bad argument is one line on stderr and exit status 2 (ExitStatus.USAGE)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from nettrail import VERSION
from nettrail.capture.events import MAX_PIDS
from nettrail.errors import ExitStatus
from nettrail.format import DEFAULT_PROBES, MAX_COUNT, MAX_INTERVAL_S, PROBE_OPTIONS, PROBES
from nettrail.format.logs.sessions import INTERVAL_LINES
from nettrail.format.meta import CAPTURE_NICE, MAX_NICE, MIN_NICE

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


def _nice(text: str) -> int:
    value = int(text)
    if not MIN_NICE <= value <= MAX_NICE:
        raise ValueError(text)
    return value


_nice.__name__ = f"nice value ({MIN_NICE} to {MAX_NICE})"


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
    p.add_argument("--nice", type=_nice, default=CAPTURE_NICE, metavar="N",
                   help=f"the capture's nice value during the window (default {CAPTURE_NICE}: "
                        "on a saturated host it would otherwise fall behind and lose events; "
                        "0 or more yields to the workload)")


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
    p.set_defaults(view=view)


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

    chk = sub.add_parser("check", help="check kernel, privileges, hooks and libcs")
    chk.add_argument("--json", action="store_true",
                     help="one JSON object: every finding with its fix, and whether all hold")
    add_debug(chk)

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

    trg = sub.add_parser("trigger", help="make the running schedule service capture now",
                         description="Ask the running schedule service for a capture now and "
                                     "wait until it is written (exit 0), failed (1) or skipped "
                                     "because another capture is running (7).")
    trg.add_argument("--no-wait", action="store_true",
                     help="return once the capture has started (or was skipped)")
    add_debug(trg)
    return parser



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


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command and its arguments, checked: `command` names it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_window(parser, args)
    check_pids(parser, args)
    return args
