"""issue 13: nettrail as root on a host where another local user (uid 65534,
through setpriv) plants files, links and processes. Each test plays one
attack from the issue and checks that root neither follows it nor hangs,
and says so in one line with its exit status."""

from __future__ import annotations

import contextlib
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
    # alive for the whole test, however slow the machine (killed at its end)
    bystander = subprocess.Popen([*AS_NOBODY, "sleep", "3600"])
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


# -- issue 23: no path of a capture looked up twice, no links others can change ---------

SWAPPER = r"""
import ctypes, os, select, struct, sys
parent = sys.argv[1]
cap, real, fake = (os.path.join(parent, n) for n in ("cap", "real", "fake"))
libc = ctypes.CDLL(None, use_errno=True)
IN_CLOSE_NOWRITE = 0x10
sys.stdin.readline()                      # root's capture has started
os.rename(cap, real)
os.rename(fake, cap)
fd = libc.inotify_init1(os.O_CLOEXEC)
assert libc.inotify_add_watch(fd, cap.encode(), IN_CLOSE_NOWRITE) >= 0
print("swapped", flush=True)
read_sessions = False
while not read_sessions:                  # until the reader has read the fake's last log
    ready, _, _ = select.select([fd, sys.stdin], [], [])
    if sys.stdin in ready:                # the capture ended without reading the fake
        break
    data = os.read(fd, 4096)
    while data:
        _, _, _, size = struct.unpack_from("iIII", data)
        read_sessions |= data[16:16 + size].rstrip(b"\0") == b"tcplife.jsonl"
        data = data[16 + size:]
os.rename(cap, fake)
os.rename(real, cap)
print("read by root" if read_sessions else "never read", flush=True)
"""


def fake_capture(path: Path) -> None:
    """What the other user puts in place of root's capture."""
    shutil.copytree(SMALL, path)
    meta = json.loads((path / "meta.json").read_text())
    meta.update(host="FAKE-HOST", title="FAKE TITLE")
    (path / "meta.json").write_text(json.dumps(meta))
    for p in (path, *path.iterdir()):
        os.chown(p, NOBODY, NOBODY)


def test_parent_swap_race_cannot_feed_the_report(shared: Path, bpf: None) -> None:
    """The owner of -o's parent renames root's capture aside during the
    window, puts a fake capture in its place, and (told by inotify that the
    reader has read it) swaps back before the report is written. The report
    is read and written through the fd the capture holds: root's directory
    gets the report of root's capture, and the fake is never read. (Before
    issue 23 root's report.html said "FAKE TITLE".)"""
    parent = nobody_dir(shared / "parent")
    fake_capture(parent / "fake")
    cap = parent / "cap"
    swapper = subprocess.Popen([*AS_NOBODY, sys.executable, "-c", SWAPPER, str(parent)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    capture = subprocess.Popen([*NETTRAIL, "capture", "0.2", "50", "-o", str(cap)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "capturing" in capture.stderr.readline()
        root_dir = os.stat(cap)
        swapper.stdin.write("go\n")
        swapper.stdin.flush()
        assert swapper.stdout.readline() == "swapped\n"
        capture.send_signal(signal.SIGINT)
        out, err = capture.communicate(timeout=120)
        with contextlib.suppress(BrokenPipeError):  # it may have swapped back already
            swapper.stdin.write("done\n")
            swapper.stdin.flush()
        swapped_back = swapper.stdout.readline()
    finally:
        for proc in (capture, swapper):
            proc.kill()
            proc.wait()
    assert capture.returncode == 0, err
    assert swapped_back == "never read\n"
    st = os.stat(cap)
    assert (st.st_ino, st.st_uid) == (root_dir.st_ino, 0)  # root's directory, back in place
    html = (cap / "report.html").read_text()
    meta = json.loads((cap / "meta.json").read_text())
    assert "FAKE" not in html and meta["host"] in html
    assert not (parent / "fake" / "report.html").exists()


@pytest.mark.parametrize("where", ["other user's directory", "sticky shared directory"])
def test_output_path_through_a_link_others_control_is_refused(shared: Path, tmp_path: Path,
                                                              where: str) -> None:
    """A symlink in a parent of -o that another user made (or could replace)
    would let them choose where root writes: refused before anything is read."""
    target = tmp_path / "roots"
    target.mkdir(mode=0o700)
    if where == "sticky shared directory":
        links = shared
        shared.chmod(0o1777)
    else:
        links = nobody_dir(shared / "theirs")
    as_nobody("ln", "-s", str(target), str(links / "link"))
    result = nettrail("report", str(SMALL), "-o", str(links / "link" / "r.html"))
    one_line(result, ExitStatus.USAGE, "link is a symbolic link that another user can change")
    assert list(target.iterdir()) == []


def test_output_path_through_roots_own_link_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real" / "deeper").mkdir(parents=True)
    (tmp_path / "alias").symlink_to("real/deeper")  # relative, in root's own directory
    result = nettrail("report", str(SMALL), "-o", str(tmp_path / "alias" / ".." / "r.html"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "real" / "r.html").is_file()  # ".." of where the link led
