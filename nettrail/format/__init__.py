"""The capture directory's format (docs/format.md), described once: one
module per log and one for meta.json. The writer (nettrail.capture) and the
reader (nettrail.report) share these descriptions; the JSON Schemas
(nettrail/format/schema.py) and the field tables of docs/format.md
(nettrail/format/docs.py) are generated from them.

`nettrail-capture/2` is written; `/1` is still read, each record upgraded to
the /2 shape as it is read (fields /1 did not have are null)."""

from __future__ import annotations

import importlib
import pkgutil

from nettrail.format import logs, meta
from nettrail.format.log import SIDES, Log, is_loopback
from nettrail.format.logs import bandwidth

FORMAT = "nettrail-capture/2"
FORMAT_V1 = "nettrail-capture/1"
READABLE_FORMATS = (FORMAT, FORMAT_V1)



def _logs() -> dict[str, Log]:
    """Every log described in nettrail/format/logs/, in their `order`."""
    found = [importlib.import_module(f"{logs.__name__}.{m.name}").LOG
             for m in pkgutil.iter_modules(logs.__path__)]
    return {log.probe: log for log in sorted(found, key=lambda log: log.order)}


LOGS = _logs()
PROBES = tuple(LOGS)
# what a capture runs unless told: the probes cheap enough to be always on
DEFAULT_PROBES = tuple(probe for probe, log in LOGS.items() if not log.opt_in)
LOG_FILES = {probe: log.file for probe, log in LOGS.items()}
# Opt-in parts of a probe, named in --probes like a probe: option: its probe
PROBE_OPTIONS = {"wire": "dns"}

META = meta.FILE
BANDWIDTH = LOGS["bandwidth"].file
SESSIONS = LOGS["sessions"].file
DNS = LOGS["dns"].file
REPORT = "report.html"

# bounds the writer keeps and the reader enforces (the CLI checks them first)
MAX_INTERVAL_S = bandwidth.MAX_INTERVAL_S
MAX_COUNT = meta.MAX_COUNT

__all__ = ["BANDWIDTH", "DEFAULT_PROBES", "DNS", "FORMAT", "FORMAT_V1", "LOGS", "LOG_FILES", "MAX_COUNT",
           "MAX_INTERVAL_S", "META", "PROBES", "PROBE_OPTIONS", "READABLE_FORMATS", "REPORT",
           "SESSIONS", "SIDES", "is_loopback"]
