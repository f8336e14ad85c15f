"""The raw log directory format (docs/format.md): names shared by writer and reader."""

from __future__ import annotations

FORMAT = "nettrail-capture/1"
META = "meta.json"
BANDWIDTH = "tcptop.jsonl"
SESSIONS = "tcplife.jsonl"
DNS = "dns.jsonl"
REPORT = "report.html"

LOG_FILES = {"bandwidth": BANDWIDTH, "sessions": SESSIONS, "dns": DNS}
PROBES = tuple(LOG_FILES)

BANDWIDTH_FIELDS = ("ts", "interval", "pid", "comm", "family", "laddr", "lport",
                    "raddr", "rport", "rx_bytes", "tx_bytes")
SESSION_FIELDS = ("ts", "pid", "comm", "family", "laddr", "lport", "raddr", "rport",
                  "tx_bytes", "rx_bytes", "opened_at", "duration_ms", "state")
DNS_FIELDS = ("ts", "pid", "comm", "host", "function", "latency_ms", "ok", "error",
              "addresses", "pending")
