"""The published JSON Schemas (docs/schema/) and `capture --summary-json`:
the schemas are what nettrail.schema generates from the format contract, and
real captures, the sample and the test fixtures all validate against them."""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from nettrail.format import (DEFAULT_PROBES, DNS, FORMAT, FORMAT_V1, LOG_FILES, LOGS, META,
                             PROBES, SESSIONS)
from nettrail.format.schema import render, schema_files, schema_for
from helpers import (ROOT, TOOLS, CaptureRun, NetNs, headline_everywhere, loopback_session,
                     read_jsonl, require_bpf)

PUBLISHED = ROOT / "docs" / "schema"
FIXTURES = [ROOT / "samples" / "capture", ROOT / "tests" / "data" / "capture_small"]
PAYLOAD_BYTES = 5_000
MAX_INTERVALS = 240


def validator(fmt: str, name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema_for(fmt, name), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def validate_capture(directory: Path) -> dict[str, int]:
    """Validate meta.json and every log line; the number of lines per probe."""
    meta = json.loads((directory / META).read_text())
    validator(meta["format"], META).validate(meta)
    lines = {}
    for probe in PROBES:
        if LOGS[probe].opt_in and not (directory / LOG_FILES[probe]).exists():
            continue  # not asked for
        if LOGS[probe].added_within and probe not in meta["probes"]:
            continue  # made before the log was added
        check = validator(meta["format"], LOG_FILES[probe])
        records = read_jsonl(directory / LOG_FILES[probe])
        for record in records:
            check.validate(record)
        lines[probe] = len(records)
    return lines


def test_published_schemas_are_the_generated_ones() -> None:
    published = {str(p.relative_to(PUBLISHED)): p.read_text()
                 for p in PUBLISHED.rglob("*.json")}
    generated = {name: render(schema) for name, schema in schema_files().items()}
    assert published == generated, (
        "docs/schema/ is out of date: run `.venv/bin/python -P -m nettrail.format.schema docs/schema`")


def test_schemas_are_valid_draft_2020_12() -> None:
    for schema in schema_files().values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_format_md_links_the_schemas() -> None:
    text = (ROOT / "docs" / "format.md").read_text()
    for folder in (FORMAT, FORMAT_V1):
        assert f"schema/{folder.replace('/', '-')}/" in text


@pytest.mark.parametrize("directory", FIXTURES, ids=lambda p: p.name)
def test_sample_and_fixture_captures_validate(directory: Path) -> None:
    assert all(validate_capture(directory).values())


def good_lookup() -> dict:
    return {"kind": "lookup", "ts": 1.5, "host": "web-3", "pid": 7, "comm": "curl",
            "nspid": None, "cgroup": None, "container": None, "unit": None,
            "source": "libc", "name": "db.example", "name_truncated": False, "qtype": None,
            "function": "getaddrinfo", "server": None, "latency_ms": 1.2, "ok": True,
            "error": None, "addresses": ["10.0.0.9"], "pending": False, "resolved_by": "dns",
            "call_ts": None}


@pytest.mark.parametrize("change", [
    {"kind": "session"}, {"host": None}, {"source": "dns"}, {"latency_ms": -1},
    {"addresses": [1]}, {"pid": True}, {"resolved_by": "cache"}],
    ids=lambda change: next(iter(change)))
def test_schema_rejects_what_the_contract_forbids(change: dict) -> None:
    check = validator(FORMAT, DNS)
    check.validate(good_lookup())
    check.validate({**good_lookup(), "service": "shipper adds its own fields"})
    assert not check.is_valid({**good_lookup(), **change})
    missing = good_lookup()
    del missing[next(iter(change))]
    assert not check.is_valid(missing)


# -- a real capture, run with --summary-json -----------------------------------

@dataclass
class SummaryRun:
    directory: Path
    server_port: int
    returncode: int
    stdout: str
    stderr: str



@pytest.fixture(scope="module")
def summary_run(tmp_path_factory: pytest.TempPathFactory, dns_netns: NetNs) -> SummaryRun:
    require_bpf()
    directory = tmp_path_factory.mktemp("schema") / "capture"
    # a long window, ended by Ctrl-C once the workload is done: however slow
    # the machine (a VM under emulation), the workload is inside the window
    run = CaptureRun(directory, "0.5", str(MAX_INTERVALS), "--summary-json")
    port = loopback_session(PAYLOAD_BYTES)
    lookup = dns_netns.spawn(sys.executable, str(TOOLS / "lookup.py"),
                             "getaddrinfo:fast.nettrail.test")
    lookup.communicate(timeout=30)
    assert lookup.returncode == 0
    run.interrupt()
    returncode, out, err = run.finish()
    return SummaryRun(directory, port, returncode, out, err)


@pytest.mark.kernel
def test_real_capture_validates(summary_run: SummaryRun) -> None:
    assert summary_run.returncode == 0, summary_run.stderr
    lines = validate_capture(summary_run.directory)
    # no accept queue in use and maybe no drop here: test_why_slow_kernel validates
    # listeners' and drops' lines
    assert all(n for probe, n in lines.items() if probe not in ("listeners", "drops")), lines
    sessions = [r for r in read_jsonl(summary_run.directory / SESSIONS)
                if r["lport"] == summary_run.server_port]
    assert [(r["kind"], r["rx_bytes"]) for r in sessions] == [(LOGS["sessions"].kind, PAYLOAD_BYTES)]
    lookups = [r for r in read_jsonl(summary_run.directory / DNS)
               if r["name"] == "fast.nettrail.test"]
    assert [(r["kind"], r["ok"]) for r in lookups] == [(LOGS["dns"].kind, True)]


@pytest.mark.kernel
def test_summary_json_is_one_object_matching_meta(summary_run: SummaryRun) -> None:
    assert summary_run.returncode == 0, summary_run.stderr
    assert summary_run.stdout.count("\n") == 1
    summary = json.loads(summary_run.stdout)
    meta = json.loads((summary_run.directory / META).read_text())
    assert summary == {
        "directory": str(summary_run.directory), "report": None, "host": socket.gethostname(),
        "started_at": meta["started_at"], "ended_at": meta["ended_at"],
        "intervals_done": meta["intervals_done"], "interrupted": True,
        "probes": {name: {"status": "ok" if name in DEFAULT_PROBES else "skipped",
                          "error": None} for name in PROBES},
        "lost_events": dict.fromkeys(PROBES, 0), "summary": meta["summary"]}
    assert summary["summary"]["sessions"] >= 1 and summary["summary"]["lookups"] >= 1


@pytest.mark.kernel
def test_real_capture_headline_is_the_same_everywhere(summary_run: SummaryRun,
                                                      tmp_path: Path) -> None:
    """--summary-json, meta.json's summary, the report page and the snapshot
    index: one set of numbers."""
    printed = json.loads(summary_run.stdout)["summary"]
    shown = headline_everywhere(summary_run.directory, tmp_path)
    assert shown["summary"] == {k: printed[k] for k in shown["summary"]}
    assert shown["page"] == shown["summary"]
    assert shown["index"] == shown["index summary"]
    assert printed["lookups"] >= 1 and printed["sessions"] >= 1
