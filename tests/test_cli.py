"""The command line: usage errors, privileges, help, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nettrail.errors import ExitStatus
from helpers import NETTRAIL, ROOT, CaptureRun, nettrail, read_jsonl
from test_capture_kernel import tcp_pair


@pytest.mark.parametrize("args, problem", [
    (["capture", "0"], "invalid seconds value"),
    (["capture", "5", "-3"], "invalid count value"),
    (["capture", "--probes", "bandwidth,tcpdump"], "unknown probe tcpdump"),
    (["capture", "-p", "abc"], "invalid PID value: 'abc'"),
    (["capture", "-p", "0"], "invalid PID value: '0'"),
    (["capture", "-p", "4294967296"], "invalid PID value: '4294967296'"),
    (["capture", "-p", "4194304"], "invalid PID value"),  # above the kernel's pid_max ceiling
    (["capture", "-p", "4194303"], "no process with PID 4194303"),
    (["capture", "-p", f"1,{os.getpid()},4194302"], "no process with PID 4194302"),
    (["capture", "inf"], "invalid seconds value: 'inf'"),
    (["capture", "nan"], "invalid seconds value: 'nan'"),
    (["capture", "86401"], "invalid seconds value"),
    (["capture", "1", "100001"], "invalid count value"),
    (["capture", "--session-lines", "-1"], "invalid number of lines value: '-1'"),
    (["frobnicate"], "invalid choice"),
    (["capture", "-p", ",".join(map(str, range(1, 18)))], "at most 16 -p PIDs"),
    (["schedule", "--cron", "* * * * *", "--dir", "/nonexistent", "--max-age", "inf"],
     "invalid number value: 'inf'"),
])
def test_usage_errors_are_one_line_exit_2(args: list[str], problem: str) -> None:
    result = nettrail(*args)
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr.count("\n") == 1 and problem in result.stderr
    assert result.stdout == ""


def test_pid_flag_takes_one_value_and_leaves_the_positionals(capture_dir: Path,
                                                            bpf: None) -> None:
    # `-p PID 1 1` once swallowed the positionals: it ran 5 s x 12 for pids [PID, 1, 1]
    result = nettrail("capture", "-p", str(os.getpid()), "0.2", "2", "-q", "--no-report",
                      "-o", str(capture_dir))
    assert result.returncode == 0, result.stderr
    meta = json.loads((capture_dir / "meta.json").read_text())
    assert (meta["interval_s"], meta["count"]) == (0.2, 2)
    assert meta["filters"]["pids"] == [os.getpid()]
    result = nettrail("capture", "-p", "1", "-p", f"{os.getpid()},1", "0.2", "1", "-q",
                      "--no-report", "-o", str(capture_dir.with_name("two")))
    assert result.returncode == 0, result.stderr
    meta = json.loads((capture_dir.with_name("two") / "meta.json").read_text())
    assert meta["filters"]["pids"] == [1, os.getpid()]


def test_help_ends_with_examples() -> None:
    for args in (["--help"], ["capture", "--help"]):
        out = nettrail(*args).stdout
        assert "examples:" in out and out.rstrip().splitlines()[-1].startswith("  ")


def test_capture_as_non_root_is_one_clear_line(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    tmp_path.chmod(0o777)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *NETTRAIL,
         "capture", "1", "1", "-o", str(tmp_path / "cap")],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == ExitStatus.NO_PRIVILEGE
    assert result.stderr.count("\n") == 1
    assert "needs root or CAP_BPF+CAP_PERFMON" in result.stderr and "sudo" in result.stderr
    assert not (tmp_path / "cap").exists()


def test_capture_into_non_empty_directory_is_refused(tmp_path: Path, bpf: None) -> None:
    (tmp_path / "old.txt").write_text("keep me")
    result = nettrail("capture", "1", "1", "-o", str(tmp_path))
    assert result.returncode == ExitStatus.USAGE and "is not empty" in result.stderr
    assert (tmp_path / "old.txt").read_text() == "keep me"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_window_leaves_valid_capture(capture_dir: Path, bpf: None,
                                                sig: signal.Signals) -> None:
    run = CaptureRun(capture_dir, "1", "30")
    time.sleep(2.5)
    run.interrupt(sig)
    returncode, out, err = run.finish(timeout=30)
    assert returncode == 0, err
    assert out.strip().splitlines()[-1] == str(capture_dir)
    meta = run.meta()
    assert meta["interrupted"] is True and meta["ended_at"]
    assert 2 <= meta["intervals_done"] < 30
    for name in ("tcptop.jsonl", "tcplife.jsonl", "dns.jsonl"):
        read_jsonl(capture_dir / name)  # every line is complete JSON
    assert "interrupted after" in err


def test_check_lists_hooks(bpf: None) -> None:
    result = nettrail("check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "iter/task_file" in lines["bandwidth"]
    assert lines["iter/task_file"].split()[1] == "ok"
    assert "libc.so.6" in lines["libcs"]


def test_quiet_capture_prints_only_the_directory_and_renders(capture_dir: Path,
                                                             bpf: None) -> None:
    result = nettrail("capture", "0.5", "2", "-q", "-o", str(capture_dir), "--title", "INC-7")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{capture_dir}\n" and result.stderr == ""
    meta = json.loads((capture_dir / "meta.json").read_text())
    assert meta["intervals_done"] == 2 and meta["interval_s"] == 0.5
    report = (capture_dir / "report.html").read_text()
    assert "<title>INC-7</title>" in report


def test_disk_full_is_one_line_and_keeps_what_was_written(tmp_path: Path, bpf: None) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        run = CaptureRun(small / "capture", "0.3", "40", "--probes", "sessions")
        for _ in range(1500):  # ~270 bytes of log each: far more than 64 KiB
            client, accepted = tcp_pair()
            client.close()
            accepted.close()
        returncode, _, err = run.finish(timeout=60)
        assert returncode == ExitStatus.ERROR, err
        last = err.strip().splitlines()[-1]
        assert "No space left on device" in last and "capture elsewhere with -o" in last
        lines = (small / "capture" / "tcplife.jsonl").read_text().splitlines()
        assert len(lines) > 100
        for line in lines[:-1]:  # all but a possibly cut last line are whole
            json.loads(line)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
