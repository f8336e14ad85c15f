"""Writes tests/data/capture_v2: a small nettrail-capture/2 capture with every
/2 field filled (sides, session ends, retransmissions, RTTs, a container and
systemd units, libc lookups with the wire queries they caused, a wire-only
lookup, an IP literal, a hosts-file answer). Known answers in tests/test_report.py.

    python3 tests/data/make_capture_v2.py   (from the repository)"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "capture_v2"
T0 = 1767323045.0  # 2026-01-02T03:04:05Z
HOST = "web-3"
NGINX = {"pid": 700, "comm": "nginx", "nspid": None, "cgroup": "/system.slice/nginx.service",
         "container": None, "unit": "nginx.service"}
CURL = {"pid": 100, "comm": "curl", "nspid": None,
        "cgroup": "/user.slice/user-0.slice/session-4.scope", "container": None,
        "unit": "session-4.scope"}
APP = {"pid": 900, "comm": "app", "nspid": 7,
       "cgroup": "/system.slice/docker-3f2a9c1e5b7d0a4f.scope", "container": "3f2a9c1e5b7d0a4f",
       "unit": "docker-3f2a9c1e5b7d0a4f.scope"}
PROBE = {"pid": 400, "comm": "probe", "nspid": None, "cgroup": "/system.slice/cron.service",
         "container": None, "unit": "cron.service"}
NEWBIE = {"pid": 950, "comm": "late\u202eexe", "nspid": None,  # bidi override: sanitised
          "cgroup": "/user.slice/user-0.slice/session-4.scope", "container": None,
          "unit": "session-4.scope"}
LOCAL4, LOCAL6 = "10.0.0.5", "2001:db8::5"


def conn(who: dict, family: str, laddr: str, lport: int, raddr: str, rport: int,
         side: str | None) -> dict:
    return {"host": HOST, **who, "netns": 4026531840, "family": family, "laddr": laddr,
            "lport": lport, "raddr": raddr, "rport": rport, "side": side}


def bandwidth(interval: int, c: dict, rx: int, tx: int, retrans: int, srtt: int) -> dict:
    return {"kind": "bandwidth", "ts": T0 + 2 * interval, "interval": interval,
            "interval_s": 2.0, **c, "rx_bytes": rx, "tx_bytes": tx, "retrans_bytes": retrans,
            "srtt_us": srtt}


def session(ts: float, c: dict, tx: int, rx: int, retrans: int | None, srtt: int | None,
            opened: float | None, state: str, end: str | None) -> dict:
    head = {"kind": "session", "ts": T0 + ts}
    return {**head, **c, "tx_bytes": tx, "rx_bytes": rx, "retrans_segs": retrans,
            "srtt_us": srtt, "opened_at": None if opened is None else T0 + opened,
            "duration_ms": None if opened is None else round((ts - opened) * 1000, 3),
            "state": state, "end": end}


def lookup(ts: float, who: dict, source: str, name: str, latency_ms: float, ok: bool,
           error: str | None, addresses: list[str], resolved_by: str | None,
           qtype: str | None = None, server: str | None = None, function: str | None = None,
           pending: bool = False, call_ts: float | None = None) -> dict:
    return {"kind": "lookup", "ts": T0 + ts, "host": HOST, **who, "source": source,
            "name": name, "name_truncated": False, "qtype": qtype,
            "function": function if source == "libc" else None,
            "server": server, "latency_ms": latency_ms, "ok": ok, "error": error,
            "addresses": addresses, "pending": pending, "resolved_by": resolved_by,
            "call_ts": None if call_ts is None else T0 + call_ts}


def libc(ts: float, who: dict, name: str, latency_ms: float, ok: bool, error: str | None,
         addresses: list[str], resolved_by: str | None = "dns",
         function: str = "getaddrinfo", pending: bool = False) -> dict:
    return lookup(ts, who, "libc", name, latency_ms, ok, error, addresses, resolved_by,
                  function=function, pending=pending)


def wire(ts: float, who: dict, name: str, qtype: str, latency_ms: float, error: str | None,
         addresses: list[str], call_ts: float | None = None) -> dict:
    """A query on the wire; `call_ts`: the libc call it was made in, if any."""
    return lookup(ts, who, "wire", name, latency_ms, error is None, error, addresses, "dns",
                  qtype=qtype, server="10.0.0.2:53", call_ts=call_ts)


API = "192.0.2.10"
CURL_API = conn(CURL, "ipv4", LOCAL4, 40000, API, 443, "client")
NGINX_IN = conn(NGINX, "ipv6", LOCAL6, 443, "2001:db8::77", 51000, "server")
APP_DB = conn(APP, "ipv4", "172.17.0.2", 45000, "192.0.2.30", 5432, "client")
SSH_OLD = conn(NGINX | {"pid": 200, "comm": "sshd", "cgroup": "/system.slice/ssh.service",
                        "unit": "ssh.service"}, "ipv4", LOCAL4, 22, "198.51.100.7", 50000, None)
NEWBIE_API = conn(NEWBIE, "ipv4", LOCAL4, 40100, API, 443, "client")

BANDWIDTH = [
    bandwidth(1, CURL_API, 250_000, 1_000, 0, 900),
    bandwidth(1, NGINX_IN, 2_000, 500_000, 14_480, 150_000),
    bandwidth(1, SSH_OLD, 50, 70, 0, 400),
    bandwidth(2, CURL_API, 750_000, 2_000, 0, 950),
    bandwidth(2, NGINX_IN, 1_000, 250_000, 0, 140_000),
    bandwidth(2, APP_DB, 40_000, 8_000, 0, 300),
    bandwidth(3, APP_DB, 20_000, 4_000, 0, 300),
    bandwidth(3, NEWBIE_API, 5_000, 600, 0, 800),
]

SESSIONS = [
    session(4.0, CURL_API, 3_000, 1_000_000, 0, 950, 0.5, "closed", "normal"),
    *[session(2.1 + n / 100, conn(PROBE, "ipv4", LOCAL4, 41001 + n, "192.0.2.20", 80,
                                  "client"), 0, 0, 0, None, 2.1 + n / 100 - 0.001, "closed",
              "refused") for n in range(3)],
    session(3.0, conn(PROBE, "ipv4", LOCAL4, 41010, "192.0.2.21", 80, "client"), 0, 0, 2,
            None, 0.0, "closed", "timeout"),
    session(5.5, NGINX_IN, 750_000, 3_000, 12, 150_000, 1.0, "closed", "reset"),
    session(6.0, APP_DB, 12_000, 60_000, 0, 300, 3.0, "open", None),
    session(6.0, SSH_OLD, 5_000, 6_000, 0, 400, None, "open", None),
    session(5.8, NEWBIE_API, 600, 5_000, 0, 800, 4.5, "closed", "normal"),
]

DNS = [
    # curl: a libc call and the two wire queries it made (A and AAAA)
    wire(0.2005, CURL, "api.example.com", "A", 12.0, None, [API], call_ts=0.2),
    wire(0.2006, CURL, "api.example.com", "AAAA", 11.5, None, ["2001:db8::10"], call_ts=0.2),
    libc(0.2, CURL, "api.example.com", 14.0, True, None, [API, "2001:db8::10"]),
    # probe: the search suffix on the wire, NXDOMAIN; libc says EAI_NONAME
    libc(1.0, PROBE, "missing", 25.0, False, "EAI_NONAME", []),
    wire(1.001, PROBE, "missing.corp.test", "A", 10.0, "NXDOMAIN", [], call_ts=1.0),
    wire(1.012, PROBE, "missing", "A", 11.0, "NXDOMAIN", [], call_ts=1.0),
    # the container's resolver talks DNS itself: wire-only lookups, one slow
    wire(2.5, APP, "db.internal", "A", 180.0, None, ["192.0.2.30"]),
    wire(2.6, APP, "cache.internal", "A", 2000.0, None, [], ) | {"ok": False, "pending": True,
                                                               "error": None},
    # no DNS at all: an IP literal and a hosts-file answer
    libc(3.0, PROBE, "192.0.2.20", 0.01, True, None, ["192.0.2.20"], "literal"),
    libc(3.1, CURL, "localhost", 0.05, True, None, ["127.0.0.1"], "hosts"),
    # another process resolves the same address: never names curl's connection
    libc(3.2, PROBE, "other-name.example", 3.0, True, None, [API]),
    libc(4.4, NEWBIE, "api.example.com", 8.0, True, None, [API], function="gethostbyname"),
    libc(5.0, PROBE, "hang.example", 1000.0, False, None, [], pending=True),
]

META = {
    "format": "nettrail-capture/2", "version": "0.2.0", "host": HOST, "kernel": "6.18.0-test",
    "started_at": "2026-01-02T03:04:05.000Z", "ended_at": "2026-01-02T03:04:11.000Z",
    "interval_s": 2.0, "count": 3, "intervals_done": 3, "interrupted": False,
    "trigger": "manual", "filters": {"pids": [], "probes": ["bandwidth", "sessions", "dns"]},
    "probes": {
        "bandwidth": {"status": "ok", "hook": "tp_btf/sock_send_length+sock_recv_length",
                      "error": None},
        "sessions": {"status": "ok", "hook": "tp_btf/inet_sock_set_state", "error": None},
        "dns": {"status": "ok", "hook": "uprobe/libc:getaddrinfo,gethostbyname+wire",
                "error": None},
    },
    "lost_events": {"bandwidth": 0, "sessions": 0, "dns": 0},
    "summary": None, "title": None, "note": None,
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, records in (("tcptop.jsonl", BANDWIDTH), ("tcplife.jsonl", SESSIONS),
                          ("dns.jsonl", DNS)):
        with (OUT / name).open("w") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    (OUT / "meta.json").write_text(json.dumps(META, indent=2) + "\n")


if __name__ == "__main__":
    main()
