"""The live view in a real terminal (tmux, at 80x24 and 120x40): never
blank while traffic flows, its status line whole, and Ctrl-C under a
wrapper (flock) giving the prompt back only after the report."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import NETTRAIL, ROOT
from test_capture_kernel import tcp_pair

PROMPT = "PROMPT> "
SCREEN_TIMEOUT_S = 90
POLL_S = 0.2
CHUNK = 64 << 10
FRAMES = 8  # screens looked at while the traffic flows
SERVERS = itertools.count()


class Tmux:
    """A shell in a detached tmux session of its own server and size."""

    def __init__(self, columns: int, lines: int) -> None:
        if not shutil.which("tmux"):
            pytest.fail("the terminal tests need tmux (make test installs it)")
        name = f"nettrail-test-{os.getpid()}-{next(SERVERS)}"  # a server of its own each
        self.server = ["tmux", "-L", name, "-f", "/dev/null"]
        env = {**os.environ, "PS1": PROMPT, "TERM": "xterm-256color"}
        subprocess.run([*self.server, "new-session", "-d", "-x", str(columns), "-y", str(lines),
                        "bash --norc --noprofile -i"], check=True, env=env, cwd=ROOT)
        self.columns = columns
        self.run(f"PS1={shlex.quote(PROMPT)}; clear")
        self.wait(lambda screen: screen and screen[-1] == PROMPT.rstrip() and len(screen) == 1)

    def run(self, command: str) -> None:
        subprocess.run([*self.server, "send-keys", "-l", command], check=True)
        subprocess.run([*self.server, "send-keys", "Enter"], check=True)

    def ctrl_c(self) -> None:
        subprocess.run([*self.server, "send-keys", "C-c"], check=True)

    def keys(self, text: str) -> None:
        subprocess.run([*self.server, "send-keys", "-l", text], check=True)

    def screen(self) -> list[str]:
        """The visible lines, trailing blank ones dropped."""
        out = subprocess.run([*self.server, "capture-pane", "-p"], check=True,
                             capture_output=True, text=True).stdout
        lines = [line.rstrip() for line in out.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait(self, done: Callable[[list[str]], bool]) -> list[str]:
        deadline = time.monotonic() + SCREEN_TIMEOUT_S
        while not done(screen := self.screen()):
            assert time.monotonic() < deadline, "\n".join(screen)
            time.sleep(POLL_S)
        return screen

    def close(self) -> None:
        subprocess.run([*self.server, "kill-server"], check=False)


@pytest.fixture
def traffic() -> Iterator[tuple[str, str]]:
    """Loopback bytes flowing steadily (a few MB/s) until the test ends;
    its two ends as the live view writes them (127.0.0.1:PORT). Either may be
    the one on screen: at 80 columns a row shows only its remote end, and in
    an interval a starved receiver read nothing, only the sender's row moved."""
    client, accepted = tcp_pair()
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            client.sendall(b"x" * CHUNK)
            time.sleep(0.01)

    def receive() -> None:
        while accepted.recv(1 << 20):
            pass

    threads = [threading.Thread(target=send), threading.Thread(target=receive)]
    for t in threads:
        t.start()
    try:
        yield (f"127.0.0.1:{client.getsockname()[1]}", f"127.0.0.1:{client.getpeername()[1]}")
    finally:
        stop.set()
        threads[0].join()
        client.close()
        threads[1].join()
        accepted.close()


def shows(traffic: tuple[str, str], lines: list[str]) -> bool:
    return any(end in line for line in lines for end in traffic)


def nettrail_command(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in (*NETTRAIL, *args))


@pytest.mark.parametrize("columns, lines", [(80, 24), (120, 40)])
def test_live_view_is_never_blank_while_traffic_flows(tmp_path: Path, bpf: None,
                                                      traffic: tuple[str, str],
                                                      columns: int, lines: int) -> None:
    term = Tmux(columns, lines)
    try:
        # until enough frames were seen (however slow the machine), then Ctrl-C
        term.run(nettrail_command("capture", "0.5", "1000", "--no-report", "-o",
                                  str(tmp_path / "cap")))
        frames, deadline = [], time.monotonic() + SCREEN_TIMEOUT_S
        while len(frames) < FRAMES:
            screen = term.screen()
            assert time.monotonic() < deadline, "\n".join(screen)
            if any(line.endswith("Ctrl-C ends early") for line in screen):
                if frames or shows(traffic, screen):
                    frames.append(screen)  # from the first frame that shows the flow
            time.sleep(POLL_S)
        term.ctrl_c()
        term.wait(lambda screen: any(line.startswith("nettrail: done") for line in screen))
        for frame in frames:  # every one shows it
            assert shows(traffic, frame), "\n".join(frame)
            status = next(line for line in frame if line.endswith("Ctrl-C ends early"))
            assert len(status) <= columns and " lost 0 " in status
    finally:
        term.close()


def test_ctrl_c_under_flock_returns_after_the_report(tmp_path: Path, bpf: None) -> None:
    if not shutil.which("flock"):
        pytest.fail("the wrapper test needs flock (util-linux)")
    term = Tmux(120, 40)
    directory = tmp_path / "cap"
    try:
        capture = nettrail_command("capture", "1", "30", "-o", str(directory))
        term.run(f"flock {tmp_path}/lock {capture}; echo EXIT=$?")
        term.wait(lambda screen: any(line.endswith("Ctrl-C ends early") for line in screen))
        term.ctrl_c()
        screen = term.wait(lambda screen: screen[-1] == PROMPT.rstrip() and len(screen) > 2)
        # flock waited for nettrail: its status came, after the report and the directory
        order = [next((n for n, line in enumerate(screen) if pick(line)), -1) for pick in (
            lambda line: "nettrail: rendering report" in line,  # after the echoed ^C
            lambda line: line.startswith("nettrail: done (interrupted after"),
            lambda line: line == str(directory),
            lambda line: line == "EXIT=0")]
        assert order == sorted(order) and order[0] >= 0 and order[-1] == len(screen) - 2, \
            "\n".join(screen)
        assert (directory / "report.html").exists()
    finally:
        term.close()


def test_keys_switch_to_processes_and_sort_then_the_terminal_is_restored(
        tmp_path: Path, bpf: None, traffic: tuple[str, str]) -> None:
    term = Tmux(120, 40)
    try:
        term.run("stty -a > " + shlex.quote(str(tmp_path / "before")))
        term.run(nettrail_command("capture", "0.5", "60", "--no-report", "-o",
                                  str(tmp_path / "cap")))
        term.wait(lambda screen: shows(traffic, screen))
        term.keys("p")
        term.wait(lambda screen: any(line.split()[:3] == ["PID", "COMM", "CONNS"]
                                     for line in screen))
        term.keys("s")  # all -> rx
        term.wait(lambda screen: any(line.split()[-2:] == ["*RX", "TX"] for line in screen))
        term.ctrl_c()
        term.wait(lambda screen: screen[-1] == PROMPT.rstrip()
                  and any(line.startswith("nettrail: done") for line in screen))
        term.run("stty -a > " + shlex.quote(str(tmp_path / "after")))
        term.wait(lambda screen: (tmp_path / "after").exists() and screen[-1] == PROMPT.rstrip())
        assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
    finally:
        term.close()
