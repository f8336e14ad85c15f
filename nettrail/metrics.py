"""The headline numbers as Prometheus text exposition (format 0.0.4), for
node_exporter's textfile collector: written by the schedule service after
each run and by `capture --metrics-file PATH`.

The numbers are nettrail.headline.Headline's fields, read only here (the one
adapter to port when the headline changes). Every family is a gauge of the
newest snapshot or of the runs; labels are bounded: probes, fixed outcomes,
and the top TOP_PROGRAMS process names (the rest summed apart). Names come
from other processes: sanitised (units.printable), cut, escaped, and merged
when two come out the same, so the file always parses."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nettrail.files import OutputDir, write_private
from nettrail.headline import Headline
from nettrail.units import printable

PREFIX = "nettrail_"
TOP_PROGRAMS = 10
MAX_LABEL_CHARS = 64
SUFFIX = ".prom"   # node_exporter reads only these (our temporaries end in .tmp)
FILE_MODE = 0o644  # node_exporter runs as its own user
FIX = "write it into node_exporter's textfile directory (root's or yours), as NAME.prom"


@dataclass(frozen=True)
class Program:
    name: str  # the process name (comm), as the log has it
    rx_bytes: int
    tx_bytes: int


@dataclass
class Snapshot:
    """What one capture says, as the metrics need it."""

    numbers: Headline
    started_s: float             # Unix time
    ended_s: float | None        # None: the capture did not finish
    window_s: float              # interval x intervals done
    interrupted: bool
    lost_events: dict[str, dict[str, int]]  # per probe, per cause
    probes_ok: dict[str, bool]   # per probe that was asked for
    programs: list[Program] = field(default_factory=list)  # heaviest first


@dataclass
class Runs:
    """The schedule service's runs, from its index (None: none yet)."""

    last_success_s: float | None = None
    last_run_s: dict[str, float] = field(default_factory=dict)  # status: newest start


def label_value(text: str) -> str:
    """Untrusted text as a label value: printable, bounded, escaped (\\ " and
    newline are the exposition format's escapes)."""
    text = printable(text)[:MAX_LABEL_CHARS]
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def gauge(self, name: str, help_text: str,
              samples: Iterable[tuple[dict[str, str], float | None]]) -> None:
        """One family; samples without a value (None, NaN) are left out, and a
        family without samples is not written at all."""
        kept = [(labels, v) for labels, v in samples if v is not None and math.isfinite(v)]
        if not kept:
            return
        self.lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} gauge"]
        for labels, value in kept:
            inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
            self.lines.append(f"{PREFIX}{name}{{{inner}}} {_number(value)}" if inner
                              else f"{PREFIX}{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n" if self.lines else ""


def _top_programs(programs: list[Program]) -> dict[str, list[int]]:
    """The heaviest TOP_PROGRAMS label values with [rx, tx]: names merged once
    sanitised and cut (two names must never make one series twice)."""
    merged: dict[str, list[int]] = {}
    for p in programs:
        byte_counts = merged.setdefault(label_value(p.name or "?"), [0, 0])
        byte_counts[0] += p.rx_bytes
        byte_counts[1] += p.tx_bytes
    return dict(sorted(merged.items(), key=lambda kv: -sum(kv[1]))[:TOP_PROGRAMS])


def _snapshot(out: _Exposition, s: Snapshot) -> None:
    n = s.numbers
    directions = (("received", n.rx_bytes), ("sent", n.tx_bytes))
    out.gauge("snapshot_start_timestamp_seconds", "When the newest snapshot started.",
              [({}, s.started_s)])
    out.gauge("snapshot_window_seconds", "How long the newest snapshot captured.",
              [({}, s.window_s)])
    out.gauge("snapshot_interrupted", "1 if the newest snapshot was stopped early.",
              [({}, int(s.interrupted))])
    out.gauge("snapshot_bytes", "TCP payload bytes moved in the newest snapshot.",
              [({"direction": d}, v) for d, v in directions])
    out.gauge("snapshot_bytes_per_second", "TCP payload bytes per second, over the window.",
              [({"direction": d}, v / s.window_s if s.window_s else None)
               for d, v in directions])
    out.gauge("snapshot_sessions", "TCP sessions seen; failed: refused, reset or timed out.",
              [({"outcome": "normal"}, n.sessions - n.failed_sessions),
               ({"outcome": "failed"}, n.failed_sessions)])
    out.gauge("snapshot_lookups", "Name lookups seen, by outcome.",
              [({"outcome": "ok"}, n.lookups - n.failed_lookups - n.pending_lookups),
               ({"outcome": "failed"}, n.failed_lookups),
               ({"outcome": "pending"}, n.pending_lookups)])
    out.gauge("snapshot_slowest_lookup_seconds", "The slowest lookup a name server answered.",
              [({}, n.slowest_ms / 1000 if n.slowest_ms is not None else None)])
    out.gauge("snapshot_lost_events", "Events the probes could not record, by probe and cause.",
              [({"probe": label_value(p), "cause": label_value(c)}, v)
               for p, causes in sorted(s.lost_events.items())
               for c, v in sorted(causes.items())])
    out.gauge("snapshot_probe_ok", "1 if the probe ran, 0 if it failed to start.",
              [({"probe": label_value(p)}, int(ok)) for p, ok in sorted(s.probes_ok.items())])
    top = _top_programs(s.programs)
    out.gauge("snapshot_program_bytes",
              f"TCP payload bytes of the {TOP_PROGRAMS} busiest process names.",
              [({"program": name, "direction": d}, v[i])
               for name, v in top.items() for i, (d, _) in enumerate(directions)])
    out.gauge("snapshot_other_programs_bytes", "TCP payload bytes of all other processes.",
              [({"direction": d}, max(0, total - sum(v[i] for v in top.values())))
               for i, (d, total) in enumerate(directions)])


def exposition(snapshot: Snapshot | None, runs: Runs) -> str:
    """The whole textfile: the newest snapshot's numbers (if one was read)
    and when runs last succeeded, failed or were skipped."""
    out = _Exposition()
    if snapshot is not None:
        _snapshot(out, snapshot)
    out.gauge("last_success_timestamp_seconds", "When the last capture that finished ended.",
              [({}, runs.last_success_s)])
    out.gauge("last_run_timestamp_seconds", "When the newest run of each outcome started.",
              [({"outcome": status}, when) for status, when in sorted(runs.last_run_s.items())])
    return out.text()


def check_textfile_dir(path: Path) -> None:
    """The directory the textfile will go into, checked as write_textfile will."""
    OutputDir.for_file(path, FIX).close()


def write_textfile(path: Path, text: str) -> None:
    """Replace the textfile atomically (a temporary in its directory, renamed
    through the directory's fd; a symlink is replaced, never followed)."""
    write_private(path, text.encode(), FIX, FILE_MODE)
