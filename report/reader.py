"""Read a capture directory (docs/format.md): meta.json strictly, the logs
tolerantly. A corrupt, truncated or out-of-bounds line, or a missing log,
becomes a warning naming the file and line; the report is still made from
everything else. Anything may have written these files: types and bounds
are checked here, so nothing after this sees a value it cannot handle, and
only regular files are opened (never a FIFO, a device or a symlink)."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from nettrail import jsonio
from nettrail.errors import BadCapture, Cancelled, PrivilegeError
from nettrail.files import Unreadable, open_regular, read_regular
from nettrail.logformat import (FORMAT, LOG_FILES, MAX_COUNT, MAX_INTERVAL_S, META,
                                READABLE_FORMATS, reading_rules)

MAX_WARNINGS_PER_FILE = 5
# Lines read per log at most: the report's cost stays bounded whatever a log
# holds (a lookup flood by any user writes a line per lookup); about 10 s of
# aggregation each on this project's 2-core machine (docs/report.md)
LINE_BUDGET = {"bandwidth": 4_000_000, "sessions": 1_000_000, "dns": 400_000}
CANCEL_EVERY = 16_384  # lines between two looks at `cancelled`
MAX_META_BYTES = 1 << 20
MAX_META_TEXT = 1 << 16
MAX_TEXT = 4096           # comm, hostnames, addresses, error names
MAX_ADDRESSES = 1024      # per lookup
MAX_TS = 2.0 ** 33        # Unix seconds: the year 2242
MAX_MS = 1e12             # durations and latencies: 30 years
MAX_U64 = 2 ** 64 - 1
MAX_PID = 2 ** 32 - 1
MAX_PORT = 65535

_NONE = type(None)
META_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": str, "version": str, "host": str, "kernel": str, "started_at": str,
    "ended_at": (str, _NONE), "interval_s": (int, float), "count": int, "intervals_done": int,
    "interrupted": bool, "trigger": str, "filters": dict, "probes": dict, "lost_events": dict,
    "title": (str, _NONE), "note": (str, _NONE)}


def _of_type(value: object, types: type | tuple[type, ...]) -> bool:
    """isinstance, except that true/false is not a number here."""
    if isinstance(value, bool):
        return types is bool or (isinstance(types, tuple) and bool in types)
    return isinstance(value, types)


def _within(low: float, high: float) -> Callable[[object], bool]:
    return lambda v: v is None or (low <= v <= high)  # NaN fails both


def _short_text(v: object) -> bool:
    return v is None or len(v) <= MAX_TEXT  # type: ignore[arg-type]


def _addresses(v: object) -> bool:
    return len(v) <= MAX_ADDRESSES and all(  # type: ignore[arg-type]
        isinstance(a, str) and len(a) <= MAX_TEXT for a in v)  # type: ignore[union-attr]


BOUNDS: dict[str, Callable[[object], bool]] = {
    "ts": _within(0, MAX_TS), "opened_at": _within(0, MAX_TS), "pid": _within(0, MAX_PID),
    "lport": _within(0, MAX_PORT), "rport": _within(0, MAX_PORT),
    "rx_bytes": _within(0, MAX_U64), "tx_bytes": _within(0, MAX_U64),
    "duration_ms": _within(0, MAX_MS), "latency_ms": _within(0, MAX_MS),
    "comm": _short_text, "family": _short_text, "laddr": _short_text, "raddr": _short_text,
    "state": _short_text, "host": _short_text, "function": _short_text,
    "error": _short_text, "addresses": _addresses,
    # format /2
    "interval_s": _within(0, MAX_INTERVAL_S), "nspid": _within(0, MAX_PID),
    "netns": _within(0, MAX_U64), "retrans_bytes": _within(0, MAX_U64),
    "retrans_segs": _within(0, MAX_U64), "srtt_us": _within(0, MAX_U64),
    **{key: _short_text for key in ("kind", "cgroup", "container", "unit", "side", "end",
                                    "source", "name",
                   "qtype", "server", "resolved_by")},
}


def _valid(record: object, schema: dict, intervals: int) -> bool:
    if not isinstance(record, dict):
        return False
    for key, types in schema.items():
        value = record.get(key, ...)
        if not _of_type(value, types) or not BOUNDS.get(key, lambda _: True)(value):
            return False
    # one interval number far beyond the window would size the timeline
    return "interval" not in schema or 1 <= record["interval"] <= intervals


@dataclass
class CaptureDir:
    path: Path
    meta: dict
    warnings: list[str] = field(default_factory=list)
    # asked now and then while reading: True stops the report (a service stopping)
    cancelled: Callable[[], bool] | None = None

    def records(self, probe: str) -> Iterator[dict]:
        """The probe's records, in file order; bad lines are skipped and noted."""
        name = LOG_FILES[probe]
        try:
            f = _open_in(self.path, name)
        except FileNotFoundError:
            if self.meta["probes"].get(probe, {}).get("status") != "skipped":
                self.warnings.append(f"{name} is missing: no {probe} data")
            return
        except (OSError, Unreadable, PrivilegeError) as exc:
            why = exc.problem if isinstance(exc, (Unreadable, PrivilegeError)) else exc.strerror
            self.warnings.append(f"{name} cannot be read ({why}): no {probe} data")
            return
        schema, upgrade = reading_rules(self.meta["format"], probe, self.meta["host"])
        intervals = self.meta["count"]
        bad: list[int] = []
        budget = LINE_BUDGET[probe]
        with f:
            for number, line in enumerate(f, 1):
                if number % CANCEL_EVERY == 0 and self.cancelled and self.cancelled():
                    raise Cancelled(f"report of {self.path} not rendered: nettrail is stopping",
                                    f"render it later with `nettrail report {self.path}`")
                if number > budget:
                    self.warnings.append(f"{name}: only its first {budget:,} lines were read "
                                         "(the report's cost is bounded)")
                    break
                try:
                    record = jsonio.loads(line)
                except ValueError:
                    record = None
                if not _valid(record, schema, intervals):
                    bad.append(number)
                    continue
                yield upgrade(record) if upgrade else record
        if bad:
            shown = ", ".join(map(str, bad[:MAX_WARNINGS_PER_FILE]))
            more = f" and {len(bad) - MAX_WARNINGS_PER_FILE} more" if len(
                bad) > MAX_WARNINGS_PER_FILE else ""
            self.warnings.append(f"{name}: skipped {len(bad)} unreadable line(s): "
                                 f"line {shown}{more}")


def _open_in(directory: Path, name: str) -> BinaryIO:
    """A regular file in `directory`, never through a symlink or into a FIFO."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_regular(name, dir_fd)
    finally:
        os.close(dir_fd)


def _meta_problem(meta: object) -> str | None:
    """What is wrong with a meta.json document, or None."""
    if not isinstance(meta, dict):
        return "it is not a JSON object"
    for key, types in META_SCHEMA.items():
        if not _of_type(meta.get(key, ...), types):
            return f"{key!r} is missing or not a {_type_names(types)}"
        if isinstance(meta[key], str) and len(meta[key]) > MAX_META_TEXT:
            return f"{key!r} is longer than {MAX_META_TEXT} characters"
    checks = (
        (0 < meta["interval_s"] <= MAX_INTERVAL_S, f"'interval_s' is not in (0, {MAX_INTERVAL_S:g}]"),
        (1 <= meta["count"] <= MAX_COUNT, f"'count' is not in 1..{MAX_COUNT}"),
        (0 <= meta["intervals_done"] <= meta["count"], "'intervals_done' is not in 0..count"),
        (_iso_time(meta["started_at"]), "'started_at' is not an ISO 8601 time"),
        (meta["ended_at"] is None or _iso_time(meta["ended_at"]),
         "'ended_at' is not an ISO 8601 time"),
        (all(isinstance(p, dict) and _of_type(p.get("status"), str) and
             _of_type(p.get("hook"), (str, _NONE)) and _of_type(p.get("error"), (str, _NONE))
             for p in meta["probes"].values()), "'probes' entries are not probe statuses"),
        (all(_of_type(n, int) and 0 <= n <= MAX_U64 for n in meta["lost_events"].values()),
         "'lost_events' are not counts"),
        (_filters_ok(meta["filters"]), "'filters' is not pids and probes"),
    )
    return next((why for ok, why in checks if not ok), None)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {"str": "string", "int": "integer", "float": "number", "bool": "true/false",
             "dict": "object", "NoneType": "null", "list": "list"}
    return " or ".join(names[t.__name__] for t in (types if isinstance(types, tuple)
                                                     else (types,)))


def _iso_time(text: str) -> bool:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return math.isfinite(when.timestamp())


def _filters_ok(filters: dict) -> bool:
    pids, probes = filters.get("pids", []), filters.get("probes", [])
    return (isinstance(pids, list) and all(_of_type(p, int) and 0 <= p <= MAX_PID for p in pids)
            and isinstance(probes, list) and all(isinstance(p, str) for p in probes))


def _read_meta(path: Path) -> object:
    meta_path = path / META
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise BadCapture(f"{path} is not a directory", "pass a capture directory") from None
    except FileNotFoundError:
        raise BadCapture(f"{path} does not exist", "pass a capture directory") from None
    except PermissionError:
        raise PrivilegeError(f"cannot read {path}: permission denied",
                             "run as the user who made the capture (sudo for root's)") from None
    try:
        return jsonio.loads(read_regular(META, MAX_META_BYTES, dir_fd))
    except FileNotFoundError:
        raise BadCapture(f"{path} is not a nettrail capture (no {META})",
                         "pass the directory nettrail capture printed") from None
    except PrivilegeError as exc:
        raise PrivilegeError(f"cannot read {meta_path}: permission denied", exc.fix) from None
    except Unreadable as exc:
        raise BadCapture(f"cannot read {meta_path}: {exc.problem}",
                         "the capture's meta.json is damaged") from None
    except (OSError, ValueError) as exc:
        raise BadCapture(f"cannot read {meta_path}: {exc}",
                         "the capture's meta.json is damaged") from None
    finally:
        os.close(dir_fd)


def open_capture(path: Path, cancelled: Callable[[], bool] | None = None) -> CaptureDir:
    """The capture at `path`, its meta.json checked; `cancelled`: see CaptureDir."""
    meta = _read_meta(path)
    meta_path = path / META
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        found = repr(meta.get("format") if isinstance(meta, dict) else None)[:80]
        raise BadCapture(f"{meta_path} has format {found}, this nettrail reads "
                         f"{' and '.join(map(repr, READABLE_FORMATS))}",
                         "render it with the nettrail version that captured it")
    problem = _meta_problem(meta)
    if problem:
        raise BadCapture(f"{meta_path} is damaged: {problem}",
                         "restore it from the capture, or re-run the capture")
    return CaptureDir(path, meta, cancelled=cancelled)


def open_captures(paths: list[Path], cancelled: Callable[[], bool] | None = None
                  ) -> list[CaptureDir]:
    """The captures of a fleet report: one per host. Two captures of one
    host (the same `host` in meta.json) are refused, not merged: their
    windows and -p filters may overlap, and summing them would count the
    same bytes twice."""
    captures = [open_capture(path, cancelled) for path in paths]
    seen: dict[str, Path] = {}
    for capture in captures:
        host = capture.meta["host"]
        if host in seen:
            raise BadCapture(f"{seen[host]} and {capture.path} are both captures of host "
                             f"{host[:80]!r}",
                             "a fleet report takes one capture per host: render the other "
                             "on its own")
        seen[host] = capture.path
    return captures
