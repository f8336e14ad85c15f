"""issue 13: nettrail as root on a host where another local user (uid 65534,
through setpriv) plants files, links and processes. Each test plays one
attack from the issue and checks that root neither follows it nor hangs,
and says so in one line with its exit status."""

from __future__ import annotations

import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nettrail.errors import ExitStatus
from helpers import NETTRAIL, ROOT, CaptureRun, nettrail
from test_schedule import NEVER, Service

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
SMALL = Path(__file__).parent / "data" / "capture_small"


@pytest.fixture(autouse=True)
def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("plays another user against root: needs root")


@pytest.fixture
def shared() -> Path:
    """A directory the other user can reach (pytest's tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="nettrail-security-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def nobody_dir(path: Path) -> Path:
    """A directory the other user owns (and could fill with traps)."""
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY, NOBODY)
    return path


def as_nobody(*cmd: str) -> None:
    subprocess.run([*AS_NOBODY, *cmd], check=True, timeout=30)


def run_as_nobody(*args: str, home: Path) -> subprocess.CompletedProcess:
    """nettrail as the other user, with a home of theirs (matplotlib's cache)."""
    if not home.exists():
        nobody_dir(home)
    return subprocess.run([*AS_NOBODY, *NETTRAIL, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HOME": str(home)})


def one_line(result: subprocess.CompletedProcess, status: int, text: str) -> None:
    assert result.returncode == status, result.stderr
    assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- item 1: no file tricks ------------------------------------------------------------

def test_capture_refuses_a_directory_another_user_owns(shared: Path, bpf: None) -> None:
    precious = shared / "precious"
    precious.write_text("root's file")
    trap = nobody_dir(shared / "trap")
    as_nobody("ln", "-s", str(precious), str(trap / ".meta.json.tmp"))
    result = nettrail("capture", "0.2", "1", "-o", str(trap))
    one_line(result, ExitStatus.ERROR, "belongs to uid 65534")
    assert precious.read_text() == "root's file"
    assert sorted(p.name for p in trap.iterdir()) == [".meta.json.tmp"]


@pytest.mark.parametrize("planted, status, text", [
    ("file", ExitStatus.USAGE, "exists and is not a directory"),
    ("devnull", ExitStatus.USAGE, "exists and is not a directory"),
    ("symlink", ExitStatus.USAGE, "is a symbolic link"),
    ("shared", ExitStatus.ERROR, "can be written by other users"),
])
def test_capture_output_that_is_not_a_private_directory(tmp_path: Path, bpf: None,
                                                         planted: str, status: int,
                                                         text: str) -> None:
    out = {"devnull": Path("/dev/null")}.get(planted, tmp_path / "out")
    if planted == "file":
        out.write_text("")
    elif planted == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        out.symlink_to(tmp_path / "real")
    elif planted == "shared":
        out.mkdir()
        out.chmod(0o777)
    before = sorted(p.name for p in tmp_path.iterdir())
    one_line(nettrail("capture", "0.2", "1", "-o", str(out)), status, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert Path("/dev/null").is_char_device()


def test_default_directory_cannot_be_predicted(shared: Path, bpf: None) -> None:
    shared.chmod(0o1777)  # like /tmp
    # the other user pre-creates every name of the old scheme for the next minute
    now = time.time()
    for second in range(60):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + second))
        as_nobody("mkdir", str(shared / f"nettrail-{stamp}"))
    result = subprocess.run([*NETTRAIL, "capture", "0.2", "1", "-q", "--no-report"],
                            cwd=shared, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    made = Path(result.stdout.strip())
    assert re.fullmatch(r"nettrail-\d{8}T\d{6}Z-[0-9a-f]{8}", made.name)
    st = made.lstat()
    assert st.st_uid == 0 and stat_mode(made) == 0o700
    assert all(stat_mode(p) == 0o600 for p in made.iterdir())


def stat_mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


def test_report_as_root_into_another_users_capture(shared: Path, tmp_path: Path) -> None:
    """Decided (docs/security.md): refused, with the way to write elsewhere."""
    capture = nobody_dir(shared / "capture")
    for f in SMALL.iterdir():
        shutil.copy(f, capture / f.name)
        os.chown(capture / f.name, NOBODY, NOBODY)
    precious = shared / "precious"
    precious.write_text("root's file")
    as_nobody("ln", "-s", str(precious), str(capture / ".report.html.tmp"))
    as_nobody("touch", str(capture / "report.html"))
    result = nettrail("report", str(capture))
    one_line(result, ExitStatus.ERROR, "belongs to uid 65534")
    assert "-o FILE" in result.stderr
    assert precious.read_text() == "root's file"
    assert (capture / "report.html").read_text() == ""
    out = tmp_path / "elsewhere.html"
    result = nettrail("report", str(capture), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert stat_mode(out) == 0o600 and "What stands out" in out.read_text()


def test_report_output_problems_are_one_line(tmp_path: Path) -> None:
    one_line(nettrail("report", str(SMALL), "-o", "/nonexistent/x.html"), ExitStatus.ERROR,
             "the directory /nonexistent does not exist")
    os.mkfifo(tmp_path / "fifo")
    one_line(nettrail("report", str(SMALL), "-o", str(tmp_path / "fifo")), ExitStatus.USAGE,
             "exists and is not a regular file")
    one_line(nettrail("report", str(SMALL), "-o", "/dev/null"), ExitStatus.USAGE,
             "exists and is not a regular file")
    assert Path("/dev/null").is_char_device()


def test_report_by_another_user_on_roots_capture_says_permission(shared: Path) -> None:
    capture = shared / "capture"
    shutil.copytree(SMALL, capture)
    capture.chmod(0o755)  # the directory can be listed; root's files are 0600
    for f in capture.iterdir():
        f.chmod(0o600)
    out = nobody_dir(shared / "out") / "r.html"
    home = shared / "home"
    one_line(run_as_nobody("report", str(capture), "-o", str(out), home=home),
             ExitStatus.NO_PRIVILEGE, "permission denied")
    capture.chmod(0o700)
    result = run_as_nobody("report", str(capture), "-o", str(out), home=home)
    one_line(result, ExitStatus.NO_PRIVILEGE, "permission denied")
    assert "sudo" in result.stderr and "damaged" not in result.stderr


# -- item 5: nothing raw ---------------------------------------------------------------

def test_check_as_another_user_is_no_privilege(shared: Path) -> None:
    result = run_as_nobody("check", home=shared / "home")
    assert result.returncode == ExitStatus.NO_PRIVILEGE, result.stdout + result.stderr


def test_check_escapes_library_paths_other_users_choose(shared: Path, bpf: None) -> None:
    libc = Path(ctypes.util.find_library("c") or "libc.so.6")
    libc = next(p for p in (Path("/lib/x86_64-linux-gnu") / libc.name,
                            Path("/usr/lib") / libc.name, Path("/lib") / libc.name,
                            Path("/usr/lib/aarch64-linux-gnu") / libc.name) if p.exists())
    evil = nobody_dir(shared / "e\x1b[31mvil\u202e")
    shutil.copy(libc, evil / "libc.so.6")
    holder = subprocess.Popen(
        [*AS_NOBODY, sys.executable, "-c",
         f"import ctypes, sys; ctypes.CDLL({str(evil / 'libc.so.6')!r}); print('ready', "
         "flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = nettrail("check")
    finally:
        holder.kill()
        holder.wait()
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "e\\x1b[31mvil\\u202e" in result.stdout


# -- item 4: the service's pid file and trigger ----------------------------------------

def test_stale_pid_file_does_not_aim_trigger_at_another_process(tmp_path: Path,
                                                                bpf: None) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    bystander = subprocess.Popen([*AS_NOBODY, "sleep", "60"])
    try:
        # what a SIGKILLed service leaves, its pid since reused by someone else
        (run / "schedule.pid").write_text(f"{bystander.pid}\n")
        env = {**os.environ, "NETTRAIL_RUN_DIR": str(run)}
        result = nettrail("trigger", env=env)
        one_line(result, ExitStatus.NOT_RUNNING, "no nettrail schedule service is running")
        assert bystander.poll() is None
        svc = Service(tmp_path, "--cron", NEVER, "0.2", "1")  # not "already running"
        try:
            assert (run / "schedule.pid").read_text() == f"{svc.proc.pid}\n"
            result = svc.nettrail("trigger")
            assert result.returncode == 0, result.stderr
            assert "written " in result.stdout
        finally:
            assert svc.stop() == 0
        assert bystander.poll() is None
        assert (run / "schedule.pid").read_text() == ""
    finally:
        bystander.kill()
        bystander.wait()


def test_second_service_is_busy(tmp_path: Path, bpf: None) -> None:
    svc = Service(tmp_path, "--cron", NEVER)
    try:
        result = svc.nettrail("schedule", "--cron", NEVER, "--dir", str(tmp_path / "other"))
        one_line(result, ExitStatus.BUSY, "already running")
    finally:
        svc.stop()


def test_trigger_reports_a_skipped_capture(tmp_path: Path, bpf: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    svc = Service(tmp_path, "--cron", NEVER, "0.2", "1")
    monkeypatch.setenv("NETTRAIL_RUN_DIR", svc.env["NETTRAIL_RUN_DIR"])
    busy = CaptureRun(tmp_path / "busy", "1", "30")  # holds the host lock
    try:
        result = svc.nettrail("trigger")
        one_line(result, ExitStatus.BUSY, "skipped the capture: another nettrail capture is "
                                          f"running (pid {busy.proc.pid}")
    finally:
        busy.interrupt()
        busy.finish(timeout=30)
        assert svc.stop() == 0


def test_trigger_socket_refuses_other_users(tmp_path: Path, bpf: None) -> None:
    svc = Service(tmp_path, "--cron", NEVER, "0.2", "1")
    try:
        result = subprocess.run([*AS_NOBODY, *NETTRAIL, "trigger"], cwd=ROOT, env=svc.env,
                                capture_output=True, text=True, timeout=60)
        one_line(result, ExitStatus.NO_PRIVILEGE, "permission denied")
    finally:
        assert svc.stop() == 0
    assert not any("started" in line for line in svc.lines)


def test_ctrl_c_while_trigger_waits_is_130(tmp_path: Path, bpf: None) -> None:
    svc = Service(tmp_path, "--cron", NEVER, "1", "30")
    try:
        waiting = subprocess.Popen([*NETTRAIL, "trigger"], cwd=ROOT, env=svc.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "asked the schedule service" in waiting.stdout.readline()
        assert waiting.stdout.readline().startswith("nettrail: started ")
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == ExitStatus.INTERRUPTED
        assert err == "nettrail: interrupted\n"
    finally:
        assert svc.stop() == 0
    assert any("written " in line and "interrupted" in line for line in svc.lines)


# -- item 8: SIGHUP, time namespaces, retention ends in the service ---------------------

def test_sighup_mid_window_finishes_like_sigterm(capture_dir: Path, bpf: None) -> None:
    run = CaptureRun(capture_dir, "0.5", "60")  # returns once the probes are attached
    run.interrupt(signal.SIGHUP)
    returncode, out, err = run.finish(timeout=30)
    assert returncode == 0, err
    meta = run.meta()
    assert meta["interrupted"] is True and meta["ended_at"]


@pytest.mark.parametrize("fork", [(), ("--fork",)], ids=["exec", "fork"])
def test_time_namespace_offset_is_taken_out(bpf: None, fork: tuple[str, ...]) -> None:
    """With --fork the program is in the namespace; without, only kernels
    whose exec switches to it (6.12, not 6.1) put it there."""
    if not shutil.which("unshare"):
        pytest.skip("needs util-linux unshare")
    code = "from nettrail.capture.clock import boot_ns; print(boot_ns())"
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    result = subprocess.run(["unshare", "-T", *fork, "--boottime", "86400", sys.executable,
                             "-P", "-c", code], capture_output=True, text=True, timeout=30)
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    assert result.returncode == 0, result.stderr
    assert before <= int(result.stdout) <= after  # the host's boot time, as BPF reads it


def test_damaged_snapshot_does_not_stop_the_index(tmp_path: Path, bpf: None) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    damaged = root / "20250101T000000Z"
    shutil.copytree(SMALL, damaged)
    meta = json.loads((damaged / "meta.json").read_text())
    meta["count"] = "three"
    (damaged / "meta.json").write_text(json.dumps(meta))
    (damaged / "tcptop.jsonl").write_text('{"interval": 1000000}\n')
    svc = Service(tmp_path, "--cron", NEVER, "0.2", "1")
    try:
        for _ in range(2):
            assert svc.nettrail("trigger").returncode == 0
    finally:
        assert svc.stop() == 0
    assert not any("Traceback" in line or "index not updated" in line for line in svc.lines)
    index = (root / "index.html").read_text()
    written = [p.name for p in root.iterdir() if p.name != damaged.name and p.is_dir()]
    assert len(written) == 2 and all(name in index for name in written)
