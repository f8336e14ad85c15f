"""The raw log directory format (docs/format.md): names and field types shared
by the writer (nettrail.capture) and the reader (nettrail.report).

`nettrail-capture/2` is written; `/1` is still read, each record upgraded to
the /2 shape as it is read (fields /1 did not have are null)."""

from __future__ import annotations

from collections.abc import Callable

FORMAT = "nettrail-capture/2"
FORMAT_V1 = "nettrail-capture/1"
READABLE_FORMATS = (FORMAT, FORMAT_V1)

META = "meta.json"
BANDWIDTH = "tcptop.jsonl"
SESSIONS = "tcplife.jsonl"
DNS = "dns.jsonl"
REPORT = "report.html"

LOG_FILES = {"bandwidth": BANDWIDTH, "sessions": SESSIONS, "dns": DNS}
PROBES = tuple(LOG_FILES)
# Opt-in parts of a probe, named in --probes like a probe: option: its probe
PROBE_OPTIONS = {"wire": "dns"}
# `kind` on every line: logs shipped together stay apart
KINDS = {"bandwidth": "bandwidth", "sessions": "session", "dns": "lookup"}

# bounds the writer keeps and the reader enforces (the CLI checks them first)
MAX_INTERVAL_S = 86400.0
MAX_COUNT = 100_000

Types = type | tuple[type, ...]
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))

# Who a record belongs to: on every line of every log. `host` is the capturing
# machine (the field log shippers also add, with the same meaning).
IDENTITY: dict[str, Types] = {
    "host": str,
    "pid": _OPT_INT,        # host pid (thread group id)
    "comm": str,            # the process's name (its main thread's), never a thread's
    "nspid": _OPT_INT,      # pid inside the process's own pid namespace, where it differs
    "cgroup": _OPT_STR,     # cgroup v2 path
    "container": _OPT_STR,  # container id, from the cgroup path's known patterns
    "unit": _OPT_STR,       # systemd unit (`nginx.service`), from the cgroup path
}

# One TCP connection: endpoints, its network namespace (inode) and which side
# this host is: `client` (connected), `server` (accepted), null (unknown).
CONNECTION: dict[str, Types] = {
    "netns": _OPT_INT, "family": str, "laddr": str, "lport": int, "raddr": str, "rport": int,
    "side": _OPT_STR,
}

# field: accepted JSON types, in the order the writer emits them
SCHEMAS: dict[str, dict[str, Types]] = {
    "bandwidth": {"kind": str, "ts": _NUM, "interval": int, "interval_s": _NUM, **IDENTITY,
                  **CONNECTION, "rx_bytes": int, "tx_bytes": int, "retrans_bytes": _OPT_INT,
                  "srtt_us": _OPT_INT},
    "sessions": {"kind": str, "ts": _NUM, **IDENTITY, **CONNECTION, "tx_bytes": int,
                 "rx_bytes": int, "retrans_segs": _OPT_INT, "srtt_us": _OPT_INT,
                 "opened_at": _OPT_NUM, "duration_ms": _OPT_NUM, "state": str,
                 "end": _OPT_STR},
    "dns": {"kind": str, "ts": _NUM, **IDENTITY, "source": str, "name": str,
            "name_truncated": bool, "qtype": _OPT_STR, "function": _OPT_STR,
            "server": _OPT_STR, "latency_ms": _NUM, "ok": bool, "error": _OPT_STR,
            "addresses": list, "pending": bool, "resolved_by": _OPT_STR,
            "call_ts": _OPT_NUM},
}

BANDWIDTH_FIELDS = tuple(SCHEMAS["bandwidth"])
SESSION_FIELDS = tuple(SCHEMAS["sessions"])
DNS_FIELDS = tuple(SCHEMAS["dns"])

# Values with a fixed vocabulary (docs/format.md explains each)
SIDES = ("client", "server")
SESSION_STATES = ("closed", "open")
SESSION_ENDS = ("normal", "reset", "refused", "timeout")
DNS_SOURCES = ("libc", "wire")
RESOLVED_BY = ("dns", "literal", "hosts")


def _upgrade_v1(probe: str, host: str) -> Callable[[dict], dict]:
    """A /1 record in the /2 shape: what /1 did not record is null."""
    defaults = dict.fromkeys(SCHEMAS[probe])

    def upgrade(record: dict) -> dict:
        upgraded = {**defaults, **record, "host": host, "kind": KINDS[probe]}
        if probe == "dns":  # /1's `host` was the name looked up
            upgraded.update(source="libc", name=record["host"], name_truncated=False)
        return upgraded
    return upgrade


V1_SCHEMAS: dict[str, dict[str, Types]] = {
    "bandwidth": {"ts": _NUM, "interval": int, "pid": int, "comm": str, "family": str,
                  "laddr": str, "lport": int, "raddr": str, "rport": int, "rx_bytes": int,
                  "tx_bytes": int},
    "sessions": {"ts": _NUM, "pid": _OPT_INT, "comm": str, "family": str,
                 "laddr": str, "lport": int, "raddr": str, "rport": int, "tx_bytes": int,
                 "rx_bytes": int, "opened_at": _OPT_NUM, "duration_ms": _OPT_NUM,
                 "state": str},
    "dns": {"ts": _NUM, "pid": int, "comm": str, "host": str, "function": str,
            "latency_ms": _NUM, "ok": bool, "error": _OPT_STR, "addresses": list,
            "pending": bool},
}



def reading_rules(fmt: str, probe: str, host: str
                  ) -> tuple[dict[str, Types], Callable[[dict], dict] | None]:
    """The schema a line of `probe`'s log must match in format `fmt`, and the
    function that brings a valid record to the current shape (None: as is)."""
    if fmt == FORMAT_V1:
        return V1_SCHEMAS[probe], _upgrade_v1(probe, host)
    return SCHEMAS[probe], None
