"""The raw log directory format (docs/format.md): names and field types shared
by the writer (capture/) and the reader (report/)."""

from __future__ import annotations

FORMAT = "nettrail-capture/1"
META = "meta.json"
BANDWIDTH = "tcptop.jsonl"
SESSIONS = "tcplife.jsonl"
DNS = "dns.jsonl"
REPORT = "report.html"

LOG_FILES = {"bandwidth": BANDWIDTH, "sessions": SESSIONS, "dns": DNS}
PROBES = tuple(LOG_FILES)

# bounds the writer keeps and the reader enforces (the CLI checks them first)
MAX_INTERVAL_S = 86400.0
MAX_COUNT = 100_000

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))

# field: accepted JSON types, in the order the writer emits them
SCHEMAS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "bandwidth": {"ts": _NUM, "interval": int, "pid": int, "comm": str, "family": str,
                  "laddr": str, "lport": int, "raddr": str, "rport": int, "rx_bytes": int,
                  "tx_bytes": int},
    "sessions": {"ts": _NUM, "pid": (int, type(None)), "comm": str, "family": str,
                 "laddr": str, "lport": int, "raddr": str, "rport": int, "tx_bytes": int,
                 "rx_bytes": int, "opened_at": _OPT_NUM, "duration_ms": _OPT_NUM,
                 "state": str},
    "dns": {"ts": _NUM, "pid": int, "comm": str, "host": str, "function": str,
            "latency_ms": _NUM, "ok": bool, "error": (str, type(None)), "addresses": list,
            "pending": bool},
}

BANDWIDTH_FIELDS = tuple(SCHEMAS["bandwidth"])
SESSION_FIELDS = tuple(SCHEMAS["sessions"])
DNS_FIELDS = tuple(SCHEMAS["dns"])
