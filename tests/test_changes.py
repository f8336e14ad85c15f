"""The comparison with a baseline (report/profile.py, report/changes.py,
`nettrail report --baseline`, schedule/baseline.py), root-free: captures
written here of a workload with seeded noise, and of the same workload with
known differences."""

from __future__ import annotations

import datetime as dt
import os
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from nettrail.capture.budget import SessionBudget
from nettrail.errors import UsageError
from nettrail.format import LOGS
from nettrail.report.changes import Change, compare, robust_z
from nettrail.report.profile import Profile, profile
from nettrail.report.reader import open_capture
from nettrail.schedule.baseline import pick
from helpers import nettrail

INTERVALS, INTERVAL_S = 12, 1.0
LOCAL = "10.0.0.5"
API, DB, NEW, CLOSED = ("192.0.2.10", 443), ("192.0.2.20", 80), ("192.0.2.30", 443), (
    "192.0.2.40", 5432)


def who(pid: int, comm: str) -> dict:
    return {"pid": pid, "comm": comm, "nspid": None, "cgroup": "/user.slice", "container": None,
            "unit": None}


FETCHER, POLLER, NGINX = who(100, "fetcher"), who(200, "poller"), who(300, "nginx")


def write_capture(path: Path, start: float, seed: int, incident: bool = False,
                  host: str = "web-3", **meta_fields: object) -> Path:
    """A 12 s capture: fetcher opens ~10 sessions/s to API (20 kB each) and
    looks up api.example.test twice a second (~3 ms); poller ~4 sessions/s to
    DB; nginx serves port 8080, ~5 sessions/s. The incident adds a new
    destination (NEW), poller at 5x, refused connects to CLOSED, the name 10x
    slower and DB's sessions retransmitting."""
    rng = random.Random(seed)
    path.mkdir(parents=True)
    bandwidth, sessions, dns = [], [], []
    port = iter(range(40000, 60000))

    def session(owner: dict, remote: tuple[str, int], opened: float, n_bytes: int,
                end: str = "normal", retrans: int = 0, side: str = "client") -> None:
        lport, rport = (next(port), remote[1]) if side == "client" else (8080, next(port))
        rtt_us = rng.randint(900, 1100)
        duration = 0.001 if end == "refused" else rng.uniform(0.02, 0.03)
        sessions.append({
            "kind": "session", "ts": opened + duration, "host": host, **owner,
            "netns": 4026531840, "family": "ipv4", "laddr": LOCAL, "lport": lport,
            "raddr": remote[0], "rport": rport, "side": side, "tx_bytes": n_bytes // 20,
            "rx_bytes": n_bytes, "retrans_segs": retrans, "srtt_us": rtt_us,
            "min_rtt_us": rtt_us,
            "opened_at": opened, "duration_ms": duration * 1000, "state": "closed",
            "end": end})
        if end == "normal":
            bandwidth.append({
                "kind": "bandwidth", "ts": start + INTERVAL_S * (1 + int(opened - start)),
                "interval": 1 + int(opened - start), "interval_s": INTERVAL_S, "host": host,
                **owner, "netns": 4026531840, "family": "ipv4", "laddr": LOCAL,
                "lport": lport, "raddr": remote[0], "rport": rport, "side": side,
                "rx_bytes": n_bytes, "tx_bytes": n_bytes // 20, "retrans_bytes": 0,
                "srtt_us": 1000})

    for second in range(INTERVALS):
        t = start + second
        for _ in range(rng.randint(9, 11)):
            session(FETCHER, API, t + rng.uniform(0, 0.9), rng.randint(18_000, 22_000))
        for _ in range(rng.randint(18, 22) if incident else rng.randint(3, 5)):
            session(POLLER, DB, t + rng.uniform(0, 0.9), rng.randint(4_000, 6_000),
                    retrans=(rng.random() < 0.5) * 3 if incident else 0)
        for _ in range(rng.randint(4, 6)):
            session(NGINX, (f"198.51.100.{rng.randint(1, 200)}", 0), t + rng.uniform(0, 0.9),
                    rng.randint(8_000, 12_000), side="server")
        if incident:
            for _ in range(3):
                session(FETCHER, NEW, t + rng.uniform(0, 0.9), 30_000)
            for _ in range(2):
                session(FETCHER, CLOSED, t + rng.uniform(0, 0.9), 0, end="refused")
        for _ in range(2):
            latency = rng.uniform(2.5, 3.5) * (10 if incident else 1)
            dns.append({"kind": "lookup", "ts": t + rng.uniform(0, 0.9), "host": host,
                        **FETCHER, "source": "libc", "name": "api.example.test",
                        "name_truncated": False, "qtype": None, "function": "getaddrinfo",
                        "server": None, "latency_ms": latency, "ok": True, "error": None,
                        "addresses": [API[0]], "pending": False, "resolved_by": "dns",
                        "call_ts": None})
    for name, rows in (("tcptop.jsonl", bandwidth), ("tcplife.jsonl", sessions),
                       ("dns.jsonl", dns)):
        rows.sort(key=lambda r: r["ts"])
        (path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    iso = lambda ts: dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(  # noqa: E731
        timespec="milliseconds").replace("+00:00", "Z")
    meta = {"format": "nettrail-capture/2", "version": "0.2.0", "host": host,
            "kernel": "6.18.0-test", "started_at": iso(start),
            "ended_at": iso(start + INTERVALS * INTERVAL_S), "interval_s": INTERVAL_S,
            "count": INTERVALS, "intervals_done": INTERVALS, "interrupted": False,
            "trigger": "schedule", "filters": {"pids": [], "probes": ["bandwidth", "sessions",
                                                                      "dns"]},
            "probes": {p: {"status": "ok", "hook": "test", "error": None}
                       for p in ("bandwidth", "sessions", "dns")},
            "lost_events": {"bandwidth": 0, "sessions": 0, "dns": 0}, "summary": None,
            "title": None, "note": None}
    meta.update(meta_fields)
    (path / "meta.json").write_text(json.dumps(meta))
    return path


T0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc).timestamp()  # a Tuesday


def profile_of(path: Path) -> Profile:
    capture = open_capture(path)
    try:
        return profile(capture)
    finally:
        capture.close()


def changes_of(base: Path, now: Path) -> list[Change]:
    return compare(profile_of(base), profile_of(now), "test").items


def find(items: list[Change], kind: str, subject: str, metric: str | None = None) -> Change:
    hits = [c for c in items if c.kind == kind and c.subject == subject
            and (metric is None or c.metric == metric)]
    assert hits, f"no {kind} {subject} {metric} in {[(c.kind, c.subject) for c in items]}"
    return hits[0]


def summarised_copy(capture: Path, to: Path, interval_lines: int) -> Path:
    """The capture as a line budget of `interval_lines` would have written it:
    the sessions past it per interval counted in tcplife_summary.jsonl."""
    shutil.copytree(capture, to)
    meta = json.loads((to / "meta.json").read_text())
    start = dt.datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00")).timestamp()
    lines = [json.loads(line) for line in (to / "tcplife.jsonl").read_text().splitlines()]
    budget, kept, summaries = SessionBudget(interval_lines, meta["host"]), [], []
    for interval in range(1, INTERVALS + 1):
        end = start + interval * INTERVAL_S
        kept += budget.admit([r for r in lines if end - INTERVAL_S <= r["ts"] < end
                              or (interval == INTERVALS and r["ts"] >= end)])
        summaries += budget.take(end, interval)
        budget.new_interval()
    assert len(kept) + sum(r["sessions"] for r in summaries) == len(lines)
    (to / "tcplife.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (to / LOGS["sessions"].summary.file).write_text(
        "".join(json.dumps(r) + "\n" for r in summaries))
    meta["line_budgets"] = {"sessions": budget.as_json()}
    (to / "meta.json").write_text(json.dumps(meta))
    return to


def test_sessions_past_the_line_budget_count_in_the_comparison(tmp_path: Path) -> None:
    base = write_capture(tmp_path / "base", T0, 1)
    now = write_capture(tmp_path / "now", T0 + 7 * 86_400, 2, incident=True)
    cut = summarised_copy(now, tmp_path / "cut", interval_lines=3)
    full, summarised = profile_of(now), profile_of(cut)
    for table in ("programs", "destinations", "served"):
        for key, stats in getattr(full, table).items.items():
            other = getattr(summarised, table).items[key]
            assert (other.sessions, other.closed, other.failures, other.retrans_sessions,
                    other.retrans_segs) == (stats.sessions, stats.closed, stats.failures,
                                            stats.retrans_sessions, stats.retrans_segs), key
            assert sum(other.sessions_per_bin) == sum(stats.sessions_per_bin), key
    # the same changes against the baseline, whichever way the sessions were written
    found = {(c.kind, c.subject, c.metric) for c in changes_of(base, now)}
    assert {(c.kind, c.subject, c.metric) for c in changes_of(base, cut)} == found


def test_robust_z_uses_the_baselines_spread_and_floors() -> None:
    assert robust_z([10, 11, 9, 10, 12, 8], 10.5, 0.5) == (10.0, pytest.approx(
        0.5 / 1.5))  # MAD 1 -> sigma 1.4826 < 15% of 10
    m, z = robust_z([100, 140, 60, 100, 160, 40], 200, 0.5)  # MAD 40
    assert (m, z) == (100, pytest.approx(100 / (1.4826 * 40)))
    assert robust_z([0, 0, 0, 0], 0.4, 0.5) == (0, pytest.approx(0.8))  # the floor


def test_each_known_difference_is_reported_with_both_numbers(tmp_path: Path) -> None:
    base = write_capture(tmp_path / "base", T0, seed=1)
    now = write_capture(tmp_path / "now", T0 + 7 * 86400, seed=2, incident=True)
    items = changes_of(base, now)
    new = find(items, "new destination", "192.0.2.30:443")
    assert (new.baseline, new.current, new.metric) == (0.0, 3.0, "sessions/s")
    rise = find(items, "rate", "poller", "sessions/s")
    assert 3 <= rise.baseline <= 5 and 18 <= rise.current <= 22
    refused = find(items, "failure", "192.0.2.40:5432", "refused/s")
    assert (refused.baseline, refused.current) == (0.0, 2.0)
    slow = find(items, "dns latency", "api.example.test")
    assert 2.5 <= slow.baseline <= 3.5 and 25 <= slow.current <= 35 and slow.detail == "slower"
    resent = find(items, "retransmissions", "192.0.2.20:80")
    assert resent.baseline == 0.0 and 0.3 < resent.current < 0.7
    # ranked: failures first, then the service's health, rates, what is new
    kinds = [c.kind for c in items]
    assert kinds.index("failure") < kinds.index("retransmissions") < kinds.index(
        "dns latency") < kinds.index("rate") < kinds.index("new destination")
    # nothing else changed: fetcher to API, nginx's port, the name's count
    assert not [c for c in items if c.subject in ("192.0.2.10:443", "port 8080", "nginx")]


@pytest.mark.parametrize("seeds", [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)])
def test_nothing_is_reported_for_windows_of_the_same_workload(tmp_path: Path,
                                                              seeds: tuple[int, int]) -> None:
    base = write_capture(tmp_path / "base", T0, seed=seeds[0])
    now = write_capture(tmp_path / "now", T0 + 900, seed=seeds[1])
    assert changes_of(base, now) == []


def scaled_copy(capture: Path, to: Path, field: str, factor: int) -> Path:
    """The capture with `field` of the sessions to API `factor` times larger."""
    shutil.copytree(capture, to)
    lines = []
    for line in (to / "tcplife.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["raddr"] == API[0]:
            r[field] *= factor
        lines.append(json.dumps(r) + "\n")
    (to / "tcplife.jsonl").write_text("".join(lines))
    return to


def test_rtt_compared_is_the_paths_not_the_senders_queue(tmp_path: Path) -> None:
    base = write_capture(tmp_path / "base", T0, seed=1)
    now = write_capture(tmp_path / "now", T0 + 3600, seed=2)
    queued = scaled_copy(now, tmp_path / "queued", "srtt_us", 50)
    assert changes_of(base, queued) == []
    longer = find(changes_of(base, scaled_copy(now, tmp_path / "longer", "min_rtt_us", 20)),
                  "rtt", f"{API[0]}:{API[1]}")
    assert (longer.metric, longer.detail) == ("p50 ms", "slower")
    assert 0.9 <= longer.baseline <= 1.1 and 18 <= longer.current <= 22, longer


def test_report_page_has_the_section_and_says_how(tmp_path: Path) -> None:
    base = write_capture(tmp_path / "base", T0, seed=1)
    now = write_capture(tmp_path / "now", T0 + 86400, seed=2, incident=True)
    run = nettrail("report", str(now), "--baseline", str(base))
    assert run.returncode == 0, run.stderr
    page = (now / "report.html").read_text()
    section = page[page.index('<section id="changes"'):page.index("</section>", page.index(
        '<section id="changes"'))]
    assert page.index('id="changes"') < page.index('id="standout"')
    assert f"compared with <code>{base}</code>" in section
    assert "given on the command line (--baseline)" in section
    assert "robust sigmas" in section and "median absolute deviation" in section
    text = re.sub(r"<[^>]+>", "", section)
    assert "refused at 192.0.2.40:5432: 0.00 refused/s then → 2.00 refused/s now" in text
    assert "new destination 192.0.2.30:443 api.example.test" not in text  # named by its own IP
    assert "lookups of api.example.test slower (median)" in text
    # the baseline drawn behind the bandwidth charts
    assert page.count('<path class="line baseline" d="M') == 4  # received, sent; legends
    assert "baseline: all, 2026-11-24T10:00:00.000Z" in page


def test_without_a_baseline_the_page_has_no_section(tmp_path: Path) -> None:
    now = write_capture(tmp_path / "now", T0, seed=1)
    assert nettrail("report", str(now)).returncode == 0
    assert 'id="changes"' not in (now / "report.html").read_text()


def snapshot(root: Path, when: dt.datetime, seed: int = 1, **kwargs: object) -> Path:
    return write_capture(root / when.strftime("%Y%m%dT%H%M%SZ"), when.timestamp(), seed,
                         **kwargs)


def test_auto_picks_same_host_time_and_weekday_without_failures(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tue = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)
    me = snapshot(root, tue + dt.timedelta(days=7))                      # Tuesday 10:00
    snapshot(root, tue + dt.timedelta(days=7, hours=1))                  # later: never
    snapshot(root, tue + dt.timedelta(days=6, minutes=10))               # Monday 10:10
    snapshot(root, tue + dt.timedelta(days=5, hours=5))                  # Sunday 15:00
    snapshot(root, tue + dt.timedelta(days=7, minutes=-15), host="db-1")  # another host
    snapshot(root, tue + dt.timedelta(days=7, minutes=-30), interrupted=True)
    snapshot(root, tue + dt.timedelta(days=7, minutes=-45),
             probes={"bandwidth": {"status": "failed", "hook": None, "error": "x"},
                     "sessions": {"status": "ok", "hook": "t", "error": None},
                     "dns": {"status": "ok", "hook": "t", "error": None}})
    weekly = snapshot(root, tue + dt.timedelta(minutes=20))              # last Tuesday 10:20
    snapshot(root, tue - dt.timedelta(days=7))                           # older Tuesday
    path, why, fd = pick(me)
    os.close(fd)
    assert path == weekly
    assert why == ("the most recent earlier snapshot of web-3 without failures at the same "
                   "time of day (±30 min) and day of the week (Tuesday): 20261124T102000Z")
    # without last week's, the most recent at that time of day, and it says so
    for old in (weekly, root / "20261117T100000Z"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    path, why, fd = pick(me)
    os.close(fd)
    assert path.name == "20261130T101000Z" and "none on a Tuesday yet" in why
    run = nettrail("report", str(me), "--baseline", "auto")
    assert run.returncode == 0, run.stderr
    assert "20261130T101000Z" in (me / "report.html").read_text()


def test_auto_takes_no_link_and_no_directory_others_can_write(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tue = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)
    me = snapshot(root, tue + dt.timedelta(days=7))
    fair = snapshot(root, tue)                                           # last Tuesday 10:00
    writable = snapshot(root, tue + dt.timedelta(minutes=10))             # newer, but o+w
    writable.chmod(0o777)
    elsewhere = snapshot(tmp_path / "elsewhere", tue + dt.timedelta(minutes=20))
    (root / "20261124T102000Z").symlink_to(elsewhere)                     # newest, a link
    path, why, fd = pick(me)
    try:
        assert path == fair and why.endswith(fair.name)
        assert os.path.samestat(os.fstat(fd), os.stat(fair))  # handed over open
    finally:
        os.close(fd)


def test_auto_without_a_fitting_snapshot_says_so(tmp_path: Path) -> None:
    me = snapshot(tmp_path / "root", dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc))
    with pytest.raises(UsageError, match="no earlier snapshot of web-3 without failures"):
        pick(me)
    run = nettrail("report", str(me), "--baseline", "auto")
    assert run.returncode != 0 and run.stderr.count("\n") <= 3
    assert "pass a baseline capture directory instead of auto" in run.stderr


def test_fleet_baselines_match_by_host(tmp_path: Path) -> None:
    bases = [write_capture(tmp_path / f"b-{h}", T0, seed=1, host=h) for h in ("a", "b")]
    nows = [write_capture(tmp_path / "n-a", T0 + 86400, seed=2, host="a", incident=True),
            write_capture(tmp_path / "n-b", T0 + 86400, seed=3, host="b")]
    out = tmp_path / "fleet.html"
    run = nettrail("report", *map(str, nows), "-o", str(out), "--baseline",
                   *map(str, reversed(bases)))
    assert run.returncode == 0, run.stderr
    page = out.read_text()
    a = page.index("<b>a</b>: compared with")
    b = page.index("<b>b</b>: compared with")
    part_a, part_b = (page[a:b], page[b:page.index("</section>", b)]) if a < b else (
        page[a:page.index("</section>", a)], page[b:a])
    assert "192.0.2.30:443" in part_a and "Nothing changed beyond normal variation" in part_b


def test_index_marks_the_snapshot_far_from_those_before_it(tmp_path: Path) -> None:
    from nettrail.schedule.outliers import outliers
    from nettrail.schedule.snapshots import update_index
    root = tmp_path / "root"
    first = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)
    names = [snapshot(root, first + dt.timedelta(minutes=15 * n), seed=n).name
             for n in range(6)]
    bad = snapshot(root, first + dt.timedelta(minutes=90), seed=9, incident=True).name
    headlines = update_index(root)
    flags = outliers(headlines)
    assert set(flags) == {bad}
    assert {"received", "sessions", "failed sessions"} <= set(flags[bad])
    assert "lookups" not in flags[bad]  # as many lookups as before
    page = (root / "index.html").read_text()
    assert page.count("data-outliers=") == 1
    row = page[page.index(f'data-v="{bad}"'):]
    assert row.index("unusual: ") < row.index("</tr>")
    assert all(f'data-v="{n}"' in page for n in names)
