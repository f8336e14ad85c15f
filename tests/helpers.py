"""Test helpers: run nettrail as a process, read its logs, network namespaces."""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from nettrail.capture.preflight import btf_problem, privilege_problem

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(__file__).resolve().parent / "tools"
START_TIMEOUT_S = 60
# The installed nettrail, never this source tree: -P keeps the working
# directory off sys.path.
NETTRAIL = [sys.executable, "-P", "-m", "nettrail"]


def nettrail(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed CLI to completion."""
    return subprocess.run([*NETTRAIL, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def intervals_done(directory: Path) -> int:
    """meta.json's intervals_done, rewritten at each interval's end; 0 before
    it is first written or while it is being replaced."""
    try:
        return json.loads((directory / "meta.json").read_text())["intervals_done"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


class CaptureRun:
    """`nettrail capture` running in the background; started() returns once
    every probe is attached (its first line on stderr). `prefix` runs it
    through another command that execs it (e.g. unshare); `command` is what
    runs nettrail (a test tool that sets a hook first)."""

    def __init__(self, directory: Path, *args: str, prefix: Sequence[str] = (),
                 env: dict[str, str] | None = None, command: Sequence[str] = NETTRAIL) -> None:
        self.directory = directory
        self.proc = subprocess.Popen(
            [*prefix, *command, "capture", *args, "-o", str(directory),
             "--no-report"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env)
        # the first line says every probe is attached; do not wait forever for it
        ready, _, _ = select.select([self.proc.stderr], [], [], START_TIMEOUT_S)
        self.first_line = self.proc.stderr.readline() if ready else "(no output in time)\n"
        if "capturing" not in self.first_line:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"capture did not start: {self.first_line}{err}")
        self.started = time.monotonic()

    def interrupt(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, self.first_line + err

    def meta(self) -> dict:
        return json.loads((self.directory / "meta.json").read_text())

    def records(self, name: str) -> list[dict]:
        return read_jsonl(self.directory / name)


class NetNs:
    """A network namespace with loopback up and its own resolv.conf."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.etc = Path("/etc/netns") / name

    def create(self, resolv: str) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(resolv)

    def exec_args(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def spawn(self, *cmd: str) -> subprocess.Popen:
        return subprocess.Popen(self.exec_args(*cmd), stdout=subprocess.PIPE, text=True,
                                cwd=ROOT)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


def nstat(ns: NetNs, *counters: str) -> dict[str, int]:
    """A namespace's kernel counters (nstat names), absolute (-a; -s keeps no history)."""
    out = subprocess.run(ns.exec_args("nstat", "-asz", *counters), capture_output=True,
                         text=True, check=True).stdout
    return {name: int(value) for name, value, *_ in
            (ln.split() for ln in out.splitlines() if ln and not ln.startswith("#"))}


def connect_netns(a: NetNs, b: NetNs, prefix: str) -> tuple[str, str]:
    """A veth pair between two namespaces, `prefix`.1 in a and `prefix`.2 in
    b (a /24); the two addresses."""
    veth_a, veth_b = f"{a.name[-10:]}-v", f"{b.name[-10:]}-v"
    subprocess.run(["ip", "link", "add", veth_a, "netns", a.name, "type", "veth", "peer",
                    "name", veth_b, "netns", b.name], check=True)
    addresses = (f"{prefix}.1", f"{prefix}.2")
    for ns, veth, address in ((a, veth_a, addresses[0]), (b, veth_b, addresses[1])):
        link_up(ns, veth, f"{address}/24")
    return addresses


def link_up(ns: NetNs, device: str, cidr: str) -> None:
    """A namespace's device given an address (`cidr`) and brought up."""
    subprocess.run(["ip", "-n", ns.name, "addr", "add", cidr, "dev", device], check=True)
    subprocess.run(["ip", "-n", ns.name, "link", "set", device, "up"], check=True)


def delay_netns(a: NetNs, b: NetNs, prefix: str, delay_ms: float
                ) -> tuple[subprocess.Popen, tuple[str, str]]:
    """A slow path between two namespaces: a TUN device in each, joined by
    tests/tools/delayline.py, which holds every packet delay_ms each way;
    `prefix`.1 in a and `prefix`.2 in b (a /30). The delay line (it ends
    when its stdin closes) and the two addresses."""
    proc = subprocess.Popen([sys.executable, str(TOOLS / "delayline.py"), "--ns", a.name,
                             "--ns", b.name, "--delay-ms", str(delay_ms)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert line(proc) == "ready"
    addresses = (f"{prefix}.1", f"{prefix}.2")
    for ns, address in zip((a, b), addresses):
        link_up(ns, "ntdelay", f"{address}/30")
    return proc, addresses


def nft_loss_rules(lossy_port: int, blackhole_port: int) -> str:
    """nftables rules for a namespace: one in ten segments to `lossy_port`
    dropped, every one to `blackhole_port`. Dropped on input: the sender has
    sent them, so it retransmits (a drop on output is an error TCP sees at
    once and sends again as new data)."""
    return f"""
table inet nettrail_test {{
	chain in {{
		type filter hook input priority 0;
		tcp dport {lossy_port} numgen random mod 10 == 0 counter drop
		tcp dport {blackhole_port} counter drop
	}}
}}
"""


def nft_drops(ns: NetNs) -> dict[int, tuple[int, int]]:
    """(packets, bytes) each counted drop rule of a namespace dropped, by the
    TCP port it matches (nft_loss_rules)."""
    out = subprocess.run(ns.exec_args("nft", "-j", "list", "ruleset"), capture_output=True,
                         text=True, check=True).stdout
    found = {}
    for item in json.loads(out)["nftables"]:
        exprs = item.get("rule", {}).get("expr", [])
        ports = [e["match"]["right"] for e in exprs if "match" in e
                 and e["match"]["left"].get("payload", {}).get("field") == "dport"]
        counters = [e["counter"] for e in exprs if "counter" in e]
        if ports and counters:
            found[ports[0]] = (counters[0]["packets"], counters[0]["bytes"])
    return found


# A case process (tests/tools/*case.py) reports its steps on stdout and
# waits for a line on stdin where told.
def line(proc: subprocess.Popen) -> str:
    out = proc.stdout.readline().strip()
    assert out, f"{proc.args} ended early"
    return out


def go(proc: subprocess.Popen, text: str = "go") -> None:
    proc.stdin.write(text + "\n")
    proc.stdin.flush()


def kill_left(procs: list[subprocess.Popen]) -> None:
    """End the case processes a failed test left running."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finish(proc: subprocess.Popen) -> list[str]:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, proc.args
    return out.split()


def require_bpf() -> None:
    """BPF tests need root and BTF; in CI (CI=true) they fail instead of skipping."""
    problem = privilege_problem() or btf_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"BPF cannot load in CI: {problem.one_line()}")
        pytest.skip(problem.one_line())


def loopback_session(payload_bytes: int) -> int:
    """One TCP session on 127.0.0.1 in this process: the client sends
    `payload_bytes`, then both ends close. The server's port."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            with accepted:
                client.sendall(b"x" * payload_bytes)
                client.shutdown(socket.SHUT_WR)
                while accepted.recv(65536):
                    pass
    return port


def as_host(host: str) -> list[str]:
    """A command prefix: run it under the hostname `host` (its own UTS namespace)."""
    return ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh"]


class HostPair:
    """A client and a server in two network namespaces joined by a veth pair
    (two hosts, as far as their sockets can tell): the server listens on
    `port`, the client waits for go() to send `client_bytes` and read
    `server_bytes`. Both processes exist from the start (for -p)."""

    def __init__(self, tag: str, port: int, client_bytes: int, server_bytes: int) -> None:
        self.client_ns, self.server_ns = NetNs(f"ntca{tag}"), NetNs(f"ntcb{tag}")
        for ns in (self.client_ns, self.server_ns):
            ns.create(resolv="nameserver 127.0.0.1\n")  # no lookups happen here
        _, self.address = connect_netns(self.client_ns, self.server_ns, "10.231.7")
        peer = [sys.executable, str(TOOLS / "peer.py")]
        self.server = subprocess.Popen(self.server_ns.exec_args(
            *peer, "server", "--address", self.address, "--port", str(port),
            "--expect", str(client_bytes), "--send", str(server_bytes)),
            stdout=subprocess.PIPE, text=True)
        self.port = int(self.server.stdout.readline())
        self.client = subprocess.Popen(self.client_ns.exec_args(
            *peer, "client", "--wait", "--address", self.address, "--port", str(port),
            "--send", str(client_bytes), "--expect", str(server_bytes)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.client.stdout.readline() == "waiting\n"  # exec'd: /proc has its name
        self.client_label, self.server_label = (
            f"{Path(f'/proc/{p.pid}/comm').read_text().strip()} ({p.pid})"
            for p in (self.client, self.server))

    def go(self) -> None:
        self.client.communicate("go\n", timeout=60)
        self.server.communicate(timeout=60)
        assert (self.client.returncode, self.server.returncode) == (0, 0)

    def conversation_html(self, client_host: str, server_host: str) -> str:
        """How a fleet page shows this pair's connection, matched."""
        return (f'>{client_host}:{self.client_label}</a> → <a href="#t-groups" '
                f'data-filter="{server_host}:{self.server_label}">'
                f'{server_host}:{self.server_label}</a>')

    def close(self) -> None:
        for proc in (self.client, self.server):
            proc.kill()
            proc.wait()
        self.client_ns.delete()
        self.server_ns.delete()


HEADLINE_SPAN = re.compile(r'<span data-headline="(\w+)" data-v="([^"]*)">')
INDEX_NUMBERS = ("rx_bytes", "tx_bytes", "sessions", "failed_sessions", "lookups",
                 "failed_lookups")


def headline_everywhere(capture: Path, scratch: Path) -> dict[str, dict]:
    """The headline numbers of a capture as meta.json's summary, its report
    page and a snapshot index over it show them (the index only those it has)."""
    from nettrail.report.build import write_report
    from nettrail.schedule.snapshots import update_index
    page = write_report(capture, scratch / "report.html").read_text()
    shown = {name: html.unescape(value) for name, value in HEADLINE_SPAN.findall(page)}
    meta = json.loads((capture / "meta.json").read_text())
    summary = meta["summary"]
    started = datetime.datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00"))
    root = scratch / "snapshots"
    shutil.copytree(capture, root / started.strftime("%Y%m%dT%H%M%SZ"))
    (row,) = update_index(root)
    return {"summary": {k: summary[k] for k in shown},
            "page": {k: type(summary[k])(v) if summary[k] is not None else None
                     for k, v in shown.items()},
            "index summary": {k: summary[k] for k in INDEX_NUMBERS},
            "index": {k: getattr(row, k) for k in INDEX_NUMBERS}}
