"""Root-free unit tests of the hardening's pure logic: the one sanitiser,
safe file writing, the reader's types and bounds, snapshot names, retention,
the service's log lines, crontab expressions that never fire."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from nettrail.errors import BadCapture, OutputError, UsageError
from nettrail.files import OutputDir, Unreadable, read_regular, write_private
from nettrail.report.reader import open_capture
from nettrail.schedule.crontab import crontab_trigger
from nettrail.schedule.service import Retention, ScheduleService, prune
from nettrail.schedule.snapshots import snapshot_dirs
from nettrail.units import printable

SMALL = Path(__file__).parent / "data" / "capture_small"


# -- the sanitiser ----------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("curl", "curl"),
    ("höst.example ✓", "höst.example ✓"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("x\nnettrail schedule: pruned /etc", "x\\x0anettrail schedule: pruned /etc"),
    ("evil\u202egnp.exe", "evil\\u202egnp.exe"),  # bidi override
    ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("bad\udcffbyte", "bad\\udcffbyte"),  # an undecodable byte (surrogateescape)
    ("tab\there\x7f\x9b", "tab\\x09here\\x7f\\x9b"),
])
def test_printable_escapes_what_could_move_or_reorder_text(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown  # escaping is stable: no second round


# -- safe writing -----------------------------------------------------------------

def test_private_dir_is_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with OutputDir.private(tmp_path / "cap", empty=True) as out:
            out.write("meta.json", b"{}")
            with out.new_file("log.jsonl") as f:
                f.write(b"x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cap").stat().st_mode) == 0o700
    for name in ("meta.json", "log.jsonl"):
        assert stat.S_IMODE((tmp_path / "cap" / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "cap").iterdir()) == ["log.jsonl", "meta.json"]


def test_private_dir_refuses_symlinks_shared_and_non_empty_dirs(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(UsageError, match="is a symbolic link"):
        OutputDir.private(tmp_path / "link", empty=True)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(OutputError, match="can be written by other users"):
        OutputDir.private(shared, empty=True)
    (real / "old").write_text("keep")
    with pytest.raises(UsageError, match="is not empty"):
        OutputDir.private(real, empty=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        OutputDir.private(tmp_path / "file", empty=True)


def test_write_ignores_planted_temporaries_and_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("precious")
    out_dir = tmp_path / "out"
    out_dir.mkdir(mode=0o700)
    # the names the old writer used, planted as links to a file they must not touch
    for name in (".report.html.tmp", ".meta.json.tmp"):
        (out_dir / name).symlink_to(target)
    (out_dir / "report.html").symlink_to(target)
    write_private(out_dir / "report.html", b"<html>")
    assert target.read_text() == "precious"
    report = out_dir / "report.html"
    assert not report.is_symlink() and report.read_bytes() == b"<html>"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert len(list(out_dir.iterdir())) == 3  # no temporary left behind


def test_write_refuses_to_replace_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("fifo", "dir"):
        with pytest.raises(UsageError, match="exists and is not a regular file"):
            write_private(tmp_path / name, b"x")
    assert stat.S_ISFIFO((tmp_path / "fifo").lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()].count("fifo") == 1
    assert len(list(tmp_path.iterdir())) == 2


def test_missing_output_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="the directory .*/nowhere does not exist") as exc:
        write_private(tmp_path / "nowhere" / "report.html", b"x")
    assert "disk space" not in exc.value.one_line()


def test_read_regular_never_blocks_on_a_fifo_nor_follows_links(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(Unreadable, match="not a regular file"):
        read_regular(tmp_path / "fifo", 100)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(Unreadable, match="symbolic link"):
        read_regular(tmp_path / "zero", 100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(Unreadable, match="larger than 100 bytes"):
        read_regular(tmp_path / "big", 100)


# -- the reader: types and bounds -----------------------------------------------------

def capture_copy(tmp_path: Path) -> Path:
    target = tmp_path / "capture"
    shutil.copytree(SMALL, target)
    return target


@pytest.mark.parametrize("key, value, problem", [
    ("interval_s", "1", "interval_s: expected `float`, got `str`"),
    ("interval_s", 1e300, "interval_s: expected `float` <= 86400"),
    ("count", True, "count: expected `int`, got `bool`"),
    ("count", 10 ** 9, "count: expected `int` <= 100000"),
    ("intervals_done", 4, "intervals_done: expected 0..count"),
    ("probes", [], "probes: expected `object`, got `array`"),
    ("probes", {"dns": "ok"}, "probes[...]: expected `object`, got `str`"),
    ("lost_events", {"dns": -1}, "lost_events[...]: expected `int` >= 0"),
    ("started_at", "yesterday", "started_at: expected an ISO 8601 time"),
    ("filters", {"pids": ["1"]}, "filters.pids[0]: expected `int`, got `str`"),
    ("host", {"name": "x"}, "host: expected `str`, got `object`"),
])
def test_damaged_meta_is_one_bad_capture(tmp_path: Path, key: str, value: object,
                                         problem: str) -> None:
    capture = capture_copy(tmp_path)
    meta = json.loads((capture / "meta.json").read_text())
    meta[key] = value
    (capture / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BadCapture, match="meta.json is damaged") as exc:
        open_capture(capture)
    assert problem in exc.value.problem


def _append(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def test_out_of_bounds_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    capture = capture_copy(tmp_path)
    row = json.loads((capture / "tcptop.jsonl").read_text().splitlines()[0])
    lookup = json.loads((capture / "dns.jsonl").read_text().splitlines()[0])
    bad_rows = [{**row, "interval": 1_000_000}, {**row, "ts": 1e300}, {**row, "pid": True},
                {**row, "rx_bytes": 2 ** 64}, {**row, "lport": 70000}, {**row, "comm": "c" * 5000}]
    bad_lookups = [{**lookup, "addresses": [{"ip": "1.2.3.4"}]}, {**lookup, "latency_ms": -1},
                   {**lookup, "addresses": {"a": 1}}, {**lookup, "ok": 1}]
    for r in bad_rows:
        _append(capture / "tcptop.jsonl", r)
    for r in bad_lookups:
        _append(capture / "dns.jsonl", r)
    reader = open_capture(capture)
    good_rows = list(reader.records("bandwidth"))
    good_lookups = list(reader.records("dns"))
    assert len(good_rows) == len((SMALL / "tcptop.jsonl").read_text().splitlines())
    assert len(good_lookups) == len((SMALL / "dns.jsonl").read_text().splitlines())
    assert reader.warnings[0].startswith(f"tcptop.jsonl: skipped {len(bad_rows)} unreadable")
    assert reader.warnings[1].startswith(f"dns.jsonl: skipped {len(bad_lookups)} unreadable")


def test_a_fifo_or_device_as_a_log_is_refused_not_read(tmp_path: Path) -> None:
    capture = capture_copy(tmp_path)
    (capture / "dns.jsonl").unlink()
    os.mkfifo(capture / "dns.jsonl")  # nobody writes: opening it would block forever
    (capture / "tcptop.jsonl").unlink()
    (capture / "tcptop.jsonl").symlink_to("/dev/zero")
    reader = open_capture(capture)
    assert list(reader.records("dns")) == [] and list(reader.records("bandwidth")) == []
    assert reader.warnings == [
        "dns.jsonl cannot be read (dns.jsonl is not a regular file): no dns data",
        "tcptop.jsonl cannot be read (tcptop.jsonl is a symbolic link): no bandwidth data"]


def test_meta_that_is_a_fifo_is_a_bad_capture(tmp_path: Path) -> None:
    capture = capture_copy(tmp_path)
    (capture / "meta.json").unlink()
    os.mkfifo(capture / "meta.json")
    with pytest.raises(BadCapture, match="not a regular file"):
        open_capture(capture)


# -- snapshots and retention ---------------------------------------------------------

def make_snapshot(root: Path, name: str) -> Path:
    shutil.copytree(SMALL, root / name)
    return root / name


def test_retention_removes_only_real_snapshots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    old, new = make_snapshot(root, "20250101T000000Z"), make_snapshot(root, "20250102T000000Z")
    notes = root / "20200101T000000Z"
    notes.mkdir()
    (notes / "NOTES.txt").write_text("not a snapshot: no meta.json")
    foreign = [notes, make_snapshot(root, "20991231T235959Z"),  # in the future
               make_snapshot(root, "20250103T000000Z\n"),  # "$" once matched before "\n"
               make_snapshot(root, "2025010٣T000000Z"),  # Arabic-Indic digit: \d took it
               make_snapshot(root, "20251399T000000Z")]  # digits, but no date
    elsewhere = make_snapshot(tmp_path, "20250104T000000Z")
    (root / "20250104T000000Z").symlink_to(elsewhere)
    assert snapshot_dirs(root) == [new, old]
    log: list[str] = []
    assert prune(root, Retention(keep=1), None, log.append) == [old]
    assert not old.exists() and new.exists() and log == []
    assert all(p.exists() for p in foreign) and elsewhere.exists()
    assert (root / "20250104T000000Z").is_symlink()


def test_service_log_is_one_escaped_line(tmp_path: Path) -> None:
    out = io.StringIO()
    service = ScheduleService(tmp_path, None, Retention(),  # type: ignore[arg-type]
                              crontab_trigger("0 0 1 1 *", utc=True), lambda p: p, log=out)
    service.log("written x: slowest evil\x1b[2J\nnettrail schedule: pruned /etc p95 1 ms")
    assert out.getvalue().count("\n") == 1 and "\x1b" not in out.getvalue()
    assert "\\x0anettrail schedule: pruned /etc" in out.getvalue()


@pytest.mark.parametrize("expr", ["* * 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_crontab_that_never_fires_is_a_usage_error(expr: str) -> None:
    with pytest.raises(UsageError, match="never fires"):
        crontab_trigger(expr, utc=True)
