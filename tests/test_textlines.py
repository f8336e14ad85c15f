"""The seed tools' text views, root-free: exact columns, hostile names
escaped, filters, sort keys; `nettrail show` over the v2 fixture; the
window and PID rules of the command line; `check`'s layout."""

from __future__ import annotations

import json
import time

import pytest

from nettrail.capture.check import Finding, check_json, check_lines
from nettrail.errors import ExitStatus
from nettrail.textlines import Filters, dns_line, life_line, top_snapshot
from helpers import nettrail, read_jsonl
from test_report import V2

TS = 1767323045.25
CLOCK = time.strftime("%H:%M:%S", time.localtime(TS))


def session(**extra: object) -> dict:
    return {"ts": TS, "pid": 812, "comm": "evil\x1b[2J\u202ename", "laddr": "10.0.0.5",
            "lport": 52328, "raddr": "10.0.0.9", "rport": 443, "tx_bytes": 517,
            "rx_bytes": 1048576, "duration_ms": 1603.891, "retrans_segs": 2,
            "state": "closed", "end": "reset", "netns": 4026531840, "container": None,
            **extra}


def lookup(**extra: object) -> dict:
    return {"ts": TS, "pid": 77, "comm": "curl", "name": "api.example.com\nFAKE 1 2",
            "latency_ms": 12.345, "ok": False, "error": "EAI_NONAME", "pending": False,
            "call_ts": None, "container": "3f2a9c", **extra}


def test_life_line_has_exact_bytes_outcome_and_retransmits() -> None:
    line = life_line(session())
    assert line.split() == [CLOCK, "812", "evil\\x1b[2J\\u202ename", "10.0.0.5", "52328",
                            "10.0.0.9", "443", "517", "1048576", "1603.89", "reset", "2"]
    assert life_line(session(state="open", end=None)) is None  # tcplife: closed ones only
    assert life_line(session(pid=None, comm="", duration_ms=None, retrans_segs=None)
                     ).split()[1:3] == ["-", "10.0.0.5"]


def test_dns_line_is_one_line_whatever_the_name() -> None:
    line = dns_line(lookup())
    assert "\n" not in line
    assert line.split() == [CLOCK, "77", "curl", "12.35", "EAI_NONAME",
                            "api.example.com\\x0aFAKE", "1", "2"]
    assert dns_line(lookup(ok=True, error=None)).split()[4] == "ok"
    assert dns_line(lookup(pending=True, error=None)).split()[4] == "pending"
    assert dns_line(lookup(call_ts=TS)) is None  # a query its libc call sent


def test_top_snapshot_sorts_and_limits() -> None:
    rows = [session(kind="bandwidth", lport=40000 + i, rx_bytes=1000 * i, tx_bytes=10 * (9 - i))
            for i in range(10)]
    lines = top_snapshot(rows, TS, 3, 12, "rx", 4)
    assert lines[0] == f"{CLOCK} interval 3/12: 10 connections, rx 45000 B, tx 450 B"
    assert lines[1].split() == ["PID", "COMM", "LADDR", "RADDR", "RX_BYTES", "TX_BYTES"]
    assert [line.split()[2] for line in lines[2:]] == [f"10.0.0.5:4000{i}" for i in (9, 8, 7, 6)]
    assert [line.split()[2] for line in top_snapshot(rows, TS, 3, None, "sent", 2)[2:]] == [
        "10.0.0.5:40000", "10.0.0.5:40001"]
    assert "[::1]:22" in top_snapshot([session(laddr="::1", lport=22)], TS, 1, None)[2]


def test_filters() -> None:
    assert Filters(ports=frozenset({443})).match(session())
    assert not Filters(ports=frozenset({80})).match(session())
    assert Filters(ports=frozenset({80})).match(lookup())  # lookups have no port
    assert Filters(names=("example",)).match(lookup()) and Filters(names=("x",)).match(session())
    assert not Filters(names=("other",)).match(lookup())
    assert Filters(containers=("3f2a",)).match(lookup())
    assert not Filters(containers=("3f2a",)).match(session())
    assert not Filters(netns=frozenset({1})).match(session())
    assert Filters(pids=frozenset({812}), comms=frozenset({"evil\x1b[2J\u202ename"})).match(
        session())


def test_show_prints_the_fixture_as_text() -> None:
    for view, probe in (("life", "tcplife"), ("dns", "dns")):
        result = nettrail("show", str(V2), f"--{view}")
        assert result.returncode == 0, result.stderr
        wanted = [r for r in read_jsonl(V2 / f"{probe}.jsonl")
                  if (r["state"] == "closed" if view == "life" else r["call_ts"] is None)]
        assert len(result.stdout.splitlines()) == 1 + len(wanted)
        assert "\x1b" not in result.stdout
    result = nettrail("show", str(V2), "--top", "-r", "1", "--port", "443")
    assert result.returncode == 0, result.stderr
    intervals = {r["interval"] for r in read_jsonl(V2 / "tcptop.jsonl")
                 if 443 in (r["lport"], r["rport"])}
    assert result.stdout.count(" interval ") == len(intervals)


@pytest.mark.parametrize("args, problem", [
    (["capture", "-p", "1", "5095"], "INTERVAL 5095 s without COUNT: give COUNT too"),
    (["capture", "-p", "1", "5095", "7"], "a 5095 s x 7 window lasts 9.9 h: add --long"),
    (["capture", "-p", "1", "61"], "if 61 is a PID, quote the list"),
    (["capture", "3601", "1"], "add --long if that is meant"),
    (["schedule", "--cron", "* * * * *", "--dir", "/nonexistent", "60", "61"], "--long"),
    (["capture", "--pgrep", "(unclosed"], "--pgrep (unclosed: missing )"),
    (["capture", "--pgrep", "^no-such-process-name$"], "no process matches --pgrep"),
    (["capture", "-p", "1\n\n4194302"], "no process with PID 4194302"),
    (["top", "-s", "bytes"], "invalid choice: 'bytes'"),
    (["show", "/nonexistent"], "one of the arguments --top --life --dns is required"),
])
def test_usage_errors(args: list[str], problem: str) -> None:
    result = nettrail(*args)
    assert result.returncode == ExitStatus.USAGE, result.stderr
    assert result.stderr.count("\n") == 1 and problem in result.stderr


def test_check_layout_and_json() -> None:
    findings = [Finding("kernel", "6.1.0", True),
                Finding("tp_btf/inet_sock_set_state", "found: " + "word " * 40, True),
                Finding("a-name-longer-than-the-name-column", "x", False, "do this " * 20),
                Finding("libcs", "/srv/c1/\x1b[31mlibc.so.6 (pid 1)", True)]
    for columns in (80, 100, 200):
        lines = check_lines(findings, columns)
        assert max(map(len, lines)) <= min(columns, 100)
        starts = {line.index(" ok ") for line in lines if " ok " in line}
        assert len(starts) == 1  # one column for ok/PROBLEM
    assert not any("\x1b" in line for line in check_lines(findings))
    data = json.loads(check_json(findings))
    assert data["ok"] is False and data["findings"][2]["fix"].startswith("do this")
    assert check_json(findings).isascii()
