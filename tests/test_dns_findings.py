"""issue 20's findings on the page, root-free: a capture written here holds
what the kernel tests (test_dns_diagnosis.py) see on the wire: a lookup that
the search list turns into 8 queries, a first nameserver that never answers,
SERVFAIL; and, without wire-level DNS, what a process's resolv.conf makes
likely. The page names each, and lists every lookup in time order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nettrail.format import LOGS
from nettrail.report.build import write_report

FIXTURE = Path(__file__).parent / "data" / "capture_v2"
T0 = 1767323046.0
SEARCH = ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def lookup(ts: float, name: str, **fields: object) -> dict:
    r = dict.fromkeys(LOGS["dns"].field_names)
    r.update(kind="lookup", ts=ts, host="web-3", pid=42, comm="api", source="libc", name=name,
             name_truncated=False, function="getaddrinfo", latency_ms=1.0, ok=True,
             addresses=[], pending=False, resolved_by="dns", resolv_conf=1)
    r.update(fields)
    return r


def query(call: dict, offset_ms: float, name: str, server: str, error: str | None,
          latency_ms: float) -> dict:
    return lookup(call["ts"] + offset_ms / 1000, name, source="wire", function=None,
                  qtype="A", server=server, latency_ms=latency_ms, ok=error is None,
                  error=error, call_ts=call["ts"], resolv_conf=None)


def capture(tmp_path: Path, records: list[dict], wire: str = "on") -> Path:
    target = tmp_path / "capture"
    shutil.copytree(FIXTURE, target)
    target.chmod(0o700)
    meta = json.loads((target / "meta.json").read_text())
    meta["probes"]["dns"].update(wire=wire, resolv_confs=[{
        "id": 1, "nameservers": ["10.0.0.99", "10.0.0.2"], "search": SEARCH, "ndots": 5,
        "timeout_s": 1, "attempts": 1, "options": [], "truncated": False}])
    (target / "meta.json").write_text(json.dumps(meta))
    (target / "dns.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return target


def expanded(ts: float) -> list[dict]:
    """api.svc under ndots:5: three search suffixes fail (A and AAAA), then the name."""
    call = lookup(ts, "api.svc", latency_ms=110.0, addresses=["10.0.0.5"])
    queries = [query(call, 5 + 30 * i, f"api.svc.{suffix}", "10.0.0.2:53", "NXDOMAIN", 30.0)
               for i, suffix in enumerate(SEARCH) for _ in (0, 1)]
    queries += [query(call, 100, "api.svc", "10.0.0.2:53", None, 10.0)] * 2
    return [*queries, call]


def test_search_expansion_dead_server_and_servfail_are_named(tmp_path: Path) -> None:
    dead = lookup(T0 + 3, "db.example", latency_ms=1010.0, addresses=["10.0.0.7"])
    failing = lookup(T0 + 4, "broken.example", latency_ms=3.0, ok=False, error="EAI_AGAIN")
    records = [*expanded(T0 + 1), *expanded(T0 + 2),
               query(dead, 0, "db.example", "10.0.0.99:53", "TIMEOUT", 1000.0),
               query(dead, 1000, "db.example", "10.0.0.2:53", None, 10.0), dead,
               query(failing, 0, "broken.example", "10.0.0.2:53", "SERVFAIL", 2.0), failing]
    page = write_report(capture(tmp_path, records), tmp_path / "report.html").read_text()
    assert ("api.svc: each lookup = 8 queries, 6 NXDOMAIN (ndots:5, 3 search domains): "
            "+95.0 ms per lookup, 16 queries in the window") in page
    assert ("nameserver 10.0.0.99:53 never answered: 1 queries; each lookup waited "
            "1.00 s before giving up on it") in page
    assert "nameserver 10.0.0.2:53 answered SERVFAIL to 1 queries" in page
    table = page[page.index('id="t-lookups"'):]
    assert [table.index(name) for name in ("api.svc", "db.example", "broken.example")] == sorted(
        table.index(name) for name in ("api.svc", "db.example", "broken.example"))


def test_without_wire_the_resolv_conf_makes_expansion_likely(tmp_path: Path) -> None:
    records = [lookup(T0 + 1, "api.svc", latency_ms=110.0, addresses=["10.0.0.5"])]
    page = write_report(capture(tmp_path, records, wire="off"),
                        tmp_path / "report.html").read_text()
    assert ("api.svc: likely up to 8 queries per lookup (ndots:5, 3 search domains; p50 "
            "110.0 ms; add --probes +wire to see them)") in page


def test_loss_is_named_by_its_cause_and_who_filled_the_table(tmp_path: Path) -> None:
    target = capture(tmp_path, [lookup(T0 + 1, "db.example")])
    meta = json.loads((target / "meta.json").read_text())
    meta["lost_events"]["dns"] = 1762
    meta["lost_events_by_cause"] = {"dns": {"ringbuf_full": 62, "query_share_used": 1700}}
    meta["probes"]["dns"]["loss"] = {"query_owners": [
        {"uid": 65534, "netns": 4026532999, "waiting": 1024, "refused": 1700}]}
    (target / "meta.json").write_text(json.dumps(meta))
    page = write_report(target, tmp_path / "report.html").read_text()
    assert ("dns probe lost 1,762 events (ring buffer full ×62, a user&#39;s share of the DNS "
            "query table used up ×1,700; the DNS query table was filled by uid 65534 (netns "
            "4026532999, 1,700 refused)): its numbers are a lower bound") in page
    assert "kernel buffers full" not in page
