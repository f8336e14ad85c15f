"""nettrail top, life and dns on the real kernel: their lines against known
traffic (exact bytes, names, outcomes, latencies as logged), the same lines
from `nettrail show`, open-ended runs that still leave a capture, and -p
with what pgrep prints."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nettrail.arguments import LONG_INTERVAL_S
from helpers import NETTRAIL, ROOT, START_TIMEOUT_S, NetNs, nettrail, read_jsonl
from test_capture_kernel import lookup_process, recv_exactly, tcp_pair
from tools.tcpcase import wait_acked

LINE_TIMEOUT_S = 30


class TextRun:
    """`nettrail VIEW ARGS -o DIR` with its stdout read line by line."""

    def __init__(self, directory: Path, view: str, *args: str) -> None:
        self.directory = directory
        # unbuffered: select() must see every byte not yet read
        self.proc = subprocess.Popen([*NETTRAIL, view, *args, "-o", str(directory)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0)
        ready, _, _ = select.select([self.proc.stderr], [], [], START_TIMEOUT_S)
        first = self.proc.stderr.readline().decode() if ready else "(no output in time)"
        if "capturing until Ctrl-C" not in first:
            self.proc.kill()
            raise AssertionError(f"{view} did not start: {first}{self.proc.stderr.read()}")
        self.lines: list[str] = []
        self._partial = b""

    def until(self, predicate, timeout_s: float = LINE_TIMEOUT_S) -> list[str]:
        """Lines read so far, once `predicate` holds for them (a readiness
        signal: the view printed what the test waits for)."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.lines):
            ready, _, _ = select.select([self.proc.stdout], [], [],
                                        max(deadline - time.monotonic(), 0))
            assert ready, f"no such line in time; got {self.lines}"
            self._take(os.read(self.proc.stdout.fileno(), 1 << 16))
        return self.lines

    def _take(self, data: bytes) -> None:
        *whole, self._partial = (self._partial + data).split(b"\n")
        self.lines += [line.decode() for line in whole]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=120)
        self._take(out)
        assert self.proc.returncode == 0, err
        return err.decode()


def exchange(client_bytes: int, server_bytes: int) -> tuple[int, int]:
    """A loopback session of this process with known bytes each way, closed
    once everything is acked; (client port, server port)."""
    client, accepted = tcp_pair()
    ports = client.getsockname()[1], accepted.getsockname()[1]
    client.sendall(b"c" * client_bytes)
    recv_exactly(accepted, client_bytes)
    accepted.sendall(b"s" * server_bytes)
    recv_exactly(client, server_bytes)
    wait_acked(client)
    wait_acked(accepted)
    client.close()
    accepted.close()
    return ports


def test_life_lines_are_the_sessions(tmp_path: Path, bpf: None) -> None:
    with socket.socket() as closed:  # a port nobody listens on (other tests run too)
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    run = TextRun(tmp_path / "cap", "life", "0.5", "--no-report", "--port", str(closed_port))
    pid = str(os.getpid())
    sessions = [(exchange(1000 + i, 70_000 + i), 1000 + i, 70_000 + i) for i in range(3)]
    # the refused connect passes --port: it is the readiness line
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port))
    run.until(lambda lines: any(" refused " in line for line in lines))
    assert run.lines[0].split()[:3] == ["TIME", "PID", "COMM"]
    # the filter held the others back
    assert [line.split()[6] for line in run.lines[1:]] == [str(closed_port)]
    run.stop()
    # every session of this process, both ends, exact bytes: from `show`
    shown = nettrail("show", str(run.directory), "--life", "-p", pid).stdout.splitlines()
    fields = [line.split() for line in shown[1:]]
    assert all(f[1] == pid and float(f[9]) > 0 for f in fields)
    # retransmissions: a number, not always 0 (a slow VM's tail-loss probe resends)
    assert all(f[11].isdigit() for f in fields)
    ends = {(*f[3:9], f[10]) for f in fields}  # addresses, ports, exact bytes, how it ended
    for (client_port, server_port), sent, received in sessions:
        c, s = str(client_port), str(server_port)
        for end in (("127.0.0.1", c, "127.0.0.1", s, str(sent), str(received), "normal"),
                    ("127.0.0.1", s, "127.0.0.1", c, str(received), str(sent), "normal")):
            assert end in ends, "\n".join(shown)
    # the live lines are show's lines: the refused session, one formatter
    assert [line for line in shown if " refused " in line] == run.lines[1:]


def test_top_snapshots_sum_to_the_bytes_sent(tmp_path: Path, bpf: None) -> None:
    run = TextRun(tmp_path / "cap", "top", "0.5", "--no-report", "-s", "tx", "-r", "50")
    client, accepted = tcp_pair()
    port = client.getsockname()[1]
    sent = 0
    for chunk in (300_000, 5_000, 123_457):
        client.sendall(b"x" * chunk)
        recv_exactly(accepted, chunk)
        sent += chunk
        wait_acked(client)
    # readiness: the interval after the last byte was printed with nothing of ours
    mine = f"127.0.0.1:{port} "
    mine = f"127.0.0.1:{port}"

    def sums(lines: list[str]) -> tuple[int, int]:
        """TX of the client's rows, RX of the server's (its remote is the client)."""
        rows = [line.split() for line in lines if line.startswith(" ")]
        return (sum(int(f[5]) for f in rows if f[2] == mine),
                sum(int(f[4]) for f in rows if f[3] == mine))

    run.until(lambda lines: sums(lines) == (sent, sent))
    client.close()
    accepted.close()
    run.stop()
    assert sums(run.lines) == (sent, sent)
    assert not any("\x1b" in line for line in run.lines)  # stdout is no terminal: no clearing
    headers = [line for line in run.lines if " interval " in line]
    assert headers and all(h.split()[1] == "interval" for h in headers)
    shown = nettrail("show", str(run.directory), "--top", "--port", str(port), "-r", "50")
    assert sums(shown.stdout.splitlines()) == (sent, sent)


def test_dns_lines_name_outcome_and_latency(tmp_path: Path, dns_netns: NetNs,
                                             bpf: None) -> None:
    ours = f"t21-{os.getpid()}.nettrail.test"  # other tests look names up meanwhile
    run = TextRun(tmp_path / "cap", "dns", "1", "--no-report", "--name", ours.upper())
    looker = lookup_process(dns_netns, f"getaddrinfo:slow.{ours}", f"getaddrinfo:missing.{ours}")
    looker.communicate(timeout=60)
    lines = run.until(lambda lines: len(lines) == 3)
    run.stop()
    records = {r["name"]: r for r in read_jsonl(run.directory / "dns.jsonl")
               if r["pid"] == looker.pid}
    for name, outcome in ((f"slow.{ours}", "ok"), (f"missing.{ours}", "EAI_NONAME")):
        fields = next(line.split() for line in lines if line.endswith(" " + name))
        assert fields[1:3] == [str(looker.pid), records[name]["comm"]]
        assert fields[3] == f"{records[name]['latency_ms']:.2f}" and fields[4] == outcome
    assert float(next(line for line in lines if "slow." in line).split()[3]) >= 300
    assert lines[0].split()[-2:] == ["OUTCOME", "NAME"] and len(lines) == 3  # the filter


def test_open_ended_run_leaves_a_capture_and_report(tmp_path: Path, bpf: None) -> None:
    run = TextRun(tmp_path / "cap", "top", "0.3")
    run.until(lambda lines: any(" interval 2:" in line for line in lines))
    err = run.stop()
    assert "stopped after" in err and "report " in err
    meta = json.loads((run.directory / "meta.json").read_text())
    assert meta["interrupted"] and meta["intervals_done"] >= 2
    assert meta["summary"]["elapsed_s"] >= 0.6 and (run.directory / "report.html").exists()


def test_pid_list_from_pgrep_takes_both_processes(tmp_path: Path, bpf: None) -> None:
    sleeper = tmp_path / "nt21sleep"
    shutil.copy("/bin/sleep", sleeper)
    sleepers = [subprocess.Popen([str(sleeper), "60"]) for _ in range(2)]
    try:
        pids = sorted(p.pid for p in sleepers)
        command = " ".join(NETTRAIL)
        for n, how in enumerate(('-p "$(pgrep -x nt21sleep)"', "--pgrep '^nt21sleep$'")):
            out = tmp_path / f"cap{n}"
            result = subprocess.run(["bash", "-c", f"{command} capture {how} 0.2 1 -q "
                                                   f"--no-report -o {out}"],
                                    cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            assert json.loads((out / "meta.json").read_text())["filters"]["pids"] == pids
        # unquoted, the second PID would be INTERVAL: refused, not a long window
        # (a PID up to LONG_INTERVAL_S would pass as an interval: none is that low here)
        assert pids[1] > LONG_INTERVAL_S
        result = subprocess.run(["bash", "-c", f"{command} capture -p $(pgrep -x nt21sleep) "
                                               "-q --no-report"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "without COUNT" in result.stderr
        assert f"if {pids[1]} is a PID" in result.stderr
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
