"""nettrail benchmarks (results and method in docs/benchmarks.md).

    sudo .venv/bin/python -m bench.run [throughput|listeners|drops|netstat|wire|wire-dns|sessions|sockets|lookups|overhead|report|flood|storm|fleet|fleet-ratio|dns-write ...]

Each benchmark prints markdown rows. A/B comparisons run as pairs in one run
(without, then with a capture) and report medians."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nettrail.capture.libbpf import BpfObject

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def build_tool(name: str) -> str:
    """bench/NAME.c compiled into the temporary directory: its path."""
    binary = Path(tempfile.gettempdir()) / f"nettrail-{name}"
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(binary), str(ROOT / "bench" / f"{name}.c")],
                   check=True)
    return str(binary)


class Measured:
    """A command run under GNU time, which reports its CPU and peak RSS. (wait4's
    ru_maxrss would not do: at exec Linux keeps the forking parent's peak, and
    this benchmark process grows large.)"""

    def __init__(self, *cmd: str, **popen) -> None:
        self._usage = tempfile.NamedTemporaryFile("r")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["/usr/bin/time", "-f", "%U %S %M", "-o",
                                      self._usage.name, *cmd], cwd=ROOT, **popen)

    def signal(self, sig: int) -> None:
        """Signal the measured command (time's child), not time itself."""
        for pid in self._children():
            os.kill(pid, sig)

    def _children(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def cpu_s(self) -> float:
        """CPU time the measured command has used so far."""
        (child,) = self._children()
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait(self) -> dict:
        self.proc.wait()
        user, system, rss_kb = self._usage.read().split()[-3:]
        return {"cpu_s": float(user) + float(system), "wall_s": time.monotonic() - self.started,
                "peak_rss_mb": int(rss_kb) / 1024, "returncode": self.proc.returncode}


class Background(Measured):
    """`nettrail capture` in the background; stop() ends it early (SIGINT) and
    returns its CPU time, wall time and peak RSS."""

    def __init__(self, directory: Path, interval: str, count: str, *extra: str,
                 python: str = PYTHON) -> None:
        self.directory = directory
        super().__init__(python, "-P", "-m", "nettrail", "capture", interval, count, "--no-report",
                         "-o", str(directory), *extra, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        assert "capturing" in self.proc.stderr.readline()
        self.started = time.monotonic()

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.signal(2)
        result = self.wait()
        result["meta"] = json.loads((self.directory / "meta.json").read_text())
        return result


@contextmanager
def capture(*args: str, python: str = PYTHON) -> Iterator[Background]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Background(Path(tmp) / "capture", *args, python=python)


@contextmanager
def capture_by(python: str | None, *extra: str) -> Iterator[None]:
    """A default capture (`extra`: more options) by `python`'s nettrail
    while the block runs, stopped after it; none when `python` is None."""
    if python is None:
        yield
        return
    with capture("1", "60", *extra, python=python) as cap:
        yield
        cap.stop()


def load_average() -> str:
    return f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def lines(path: Path) -> Iterator[dict]:
    with path.open() as f:
        for line in f:
            yield json.loads(line)


# -- throughput -------------------------------------------------------------------

def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def iperf(length: str, nodelay: bool, seconds: int) -> float:
    """Loopback TCP throughput in Gbit/s (iperf3, one stream)."""
    port = free_port()  # the machine is shared: a fixed port may be someone else's
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", port, "-t", str(seconds), "-l", length, "-J"]
    out = subprocess.run(cmd + (["-N"] if nodelay else []), capture_output=True, text=True,
                         check=True).stdout
    server.wait(timeout=10)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def bench_throughput(pairs: int, seconds: int) -> None:
    print("| writes | without capture: Gbit/s median (min–max) | with capture | "
          "loss of the medians | pairs |")
    print("|---|---|---|---|---|")
    for label, length, nodelay in (("64 KiB, full capture", "64K", False),
                                   ("64 B, TCP_NODELAY, full capture", "64", True)):
        without, with_ = [], []
        for _ in range(pairs):
            without.append(iperf(length, nodelay, seconds))
            with capture("1", str(seconds + 30)) as cap:
                with_.append(iperf(length, nodelay, seconds))
                cap.stop()
        a, b = statistics.median(without), statistics.median(with_)
        print(f"| {label} | {_spread(without)} | {_spread(with_)} | "
              f"{100 * (1 - b / a):.1f} % | {pairs} |")


def bench_versus(base_python: str, pairs: int, seconds: int) -> None:
    """64 B TCP_NODELAY writes under a full capture by another nettrail (its
    venv's python: e.g. main's) and by this one, alternating, in one run."""
    print("| writes | capture by the base: Gbit/s median (min–max) | by this tree | "
          "loss of the medians | pairs |")
    print("|---|---|---|---|---|")
    base, this = [], []
    for _ in range(pairs):
        for python, results in ((base_python, base), (PYTHON, this)):
            with capture("1", str(seconds + 30), python=python) as cap:
                results.append(iperf("64", True, seconds))
                cap.stop()
    a, b = statistics.median(base), statistics.median(this)
    print(f"| 64 B, TCP_NODELAY, full capture | {_spread(base)} | {_spread(this)} | "
          f"{100 * (1 - b / a):.1f} % | {pairs} |")


LISTENERS_PASS_TIMER = """
import sys, time
from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.probes.listeners import ListenersProbe
probe = ListenersProbe(RecordContext(Clock(), "bench"))
probe.start({})
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    probe.obj.read_iter("pass_listeners")
    print((time.perf_counter() - start) * 1000)
probe.close()
"""


def _probe_pairs(probe: str, others: str, pairs: int, seconds: int,
                 count_runs: str | None = None) -> int:
    """64 B TCP_NODELAY writes under a capture of `others` without and with
    `probe`, alternating in one run: a markdown row of the medians. With
    `count_runs` (and BPF stats on): how often that program of the capture
    with `probe` ran in all."""
    print(f"| writes | capture without {probe}: Gbit/s median (min–max) | with | "
          "loss of the medians | pairs | load average |")
    print("|---|---|---|---|---|---|")
    without, with_, runs = [], [], 0
    for _ in range(pairs):
        for probes, results in ((others, without), (f"{others},{probe}", with_)):
            before = {p["id"] for p in _programs()}
            with capture("1", str(seconds + 30), "--probes", probes) as cap:
                results.append(iperf("64", True, seconds))
                runs += sum(p.get("run_cnt", 0) for p in _programs()
                            if p["id"] not in before and p["name"] == count_runs)
                cap.stop()
    a, b = statistics.median(without), statistics.median(with_)
    print(f"| 64 B, TCP_NODELAY | {_spread(without)} | {_spread(with_)} | "
          f"{100 * (1 - b / a):.1f} % | {pairs} | {os.getloadavg()[0]:.1f} |")
    return runs


def bench_listeners(pairs: int, seconds: int) -> None:
    """64 B TCP_NODELAY writes under a full capture without and with the
    listeners probe, alternating in one run; then what one listeners pass
    costs over every file this host's processes hold."""
    _probe_pairs("listeners", "bandwidth,sessions,dns", pairs, seconds)
    took = [float(ms) for ms in subprocess.run(
        [PYTHON, "-P", "-c", LISTENERS_PASS_TIMER, "21"], capture_output=True, text=True,
        check=True).stdout.split()]
    print(f"\nlisteners pass over ~{_open_files():,} open files: {_spread(took)} ms (21 runs)")


def _open_files() -> int:
    """Files every process holds now (what a pass walks)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:  # gone meanwhile
            pass
    return total


NETSTAT_TIMER = """
import sys, time
from nettrail.capture.probes.netstat import namespaces, read_namespace
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    found, _ = namespaces()
    read = [read_namespace(pid, netns) for netns, pid in found.items()]
    print((time.perf_counter() - start) * 1000, len(found))
"""


def bench_netstat(runs: int = 21) -> None:
    """What one netstat reading costs here: the walk of /proc and the reads
    of each namespace's counters (the probe's whole work per interval)."""
    out = subprocess.run([PYTHON, "-P", "-c", NETSTAT_TIMER, str(runs)], capture_output=True,
                         text=True, check=True).stdout.split()
    took, spaces = [float(x) for x in out[::2]], int(out[1])
    processes = sum(1 for p in os.listdir("/proc") if p.isdigit())
    print(f"netstat reading over {processes:,} processes, {spaces:,} network namespaces: "
          f"{_spread(took)} ms ({runs} runs, load average {os.getloadavg()[0]:.1f})")


DROP_PORT = 9  # discard: dropped by nftables in the benchmark's namespace
DROP_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[1])):
    s.sendto(b"x" * 64, ("127.0.0.1", %d))
""" % DROP_PORT


def bench_drops(pairs: int, seconds: int, drops: int = 100_000) -> None:
    """64 B TCP_NODELAY writes (a path that drops nothing) under a full
    capture without and with the drops probe, alternating in one run; then
    what a drop costs the program on kfree_skb (BPF stats), over `drops`
    UDP datagrams nftables drops in a namespace of the benchmark's own."""
    with bpf_stats():
        runs = _probe_pairs("drops", "bandwidth,sessions,dns,listeners", pairs, seconds,
                            count_runs="tp_kfree_skb")
    print(f"\ntp_kfree_skb ran {runs:,} times in the {pairs} runs with it (host-wide: any "
          "packet the host dropped meanwhile)")
    ns = f"ntb-drops-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], text=True, check=True,
                       input="table inet b {\n chain in {\n  type filter hook input priority 0\n"
                       f"  udp dport {DROP_PORT} drop\n }}\n}}\n")
        before = {p["id"] for p in _programs()}
        with bpf_stats(), capture("1", "60", "--probes", "drops") as cap:
            ours = {p["id"] for p in _programs()} - before
            subprocess.run(["ip", "netns", "exec", ns, PYTHON, "-c", DROP_SENDER, str(drops)],
                           check=True)
            runs = [p for p in _programs() if p["id"] in ours and p["name"] == "tp_kfree_skb"]
            time.sleep(1.2)  # a pass: the counts are written
            cap.stop()
            counted = sum(r["dropped_packets"] for r in lines(cap.directory / "drops.jsonl")
                          if r["reason"] == "NETFILTER_DROP" and r["dport"] == DROP_PORT)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    (prog,) = runs
    print(f"\n{drops:,} datagrams dropped by nftables: {counted:,} counted as NETFILTER_DROP; "
          f"tp_kfree_skb ran {prog['run_cnt']:,} times, "
          f"{prog['run_time_ns'] / prog['run_cnt']:.0f} ns per run (load average "
          f"{os.getloadavg()[0]:.1f})")


BPF_ENABLE_STATS, BPF_STATS_RUN_TIME, SYS_BPF = 32, 0, 321


@contextmanager
def bpf_stats() -> Iterator[None]:
    """Kernel BPF run-time stats, on only while this process holds the fd."""
    attr = (ctypes.c_uint32 * 32)(BPF_STATS_RUN_TIME)
    fd = ctypes.CDLL(None, use_errno=True).syscall(SYS_BPF, BPF_ENABLE_STATS, attr,
                                                   ctypes.sizeof(attr))
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        os.close(fd)


def _programs() -> list[dict]:
    return json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                     text=True, check=True).stdout)


def _churn(connections: int, payload: int) -> None:
    """Loopback connections one after another: open, send, close."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        def serve() -> None:
            for _ in range(connections):
                conn, _ = listener.accept()
                with conn:
                    while conn.recv(65536):
                        pass
        server = threading.Thread(target=serve)
        server.start()
        for _ in range(connections):
            with socket.create_connection(listener.getsockname()) as conn:
                conn.sendall(b"x" * payload)
        server.join()


def _program_costs(python: str, connections: int) -> dict[str, tuple[int, int]]:
    """run_cnt and run_time_ns of the programs one TCP capture loaded (those
    that appeared when it started), after `connections` short connections."""
    before = {p["id"] for p in _programs()}
    with capture("1", "60", "--probes", "bandwidth,sessions", python=python) as cap:
        ours = {p["id"] for p in _programs()} - before
        _churn(connections, 65536)
        time.sleep(2.2)  # two passes
        costs: dict[str, tuple[int, int]] = {}
        for p in _programs():
            if p["id"] in ours and p.get("run_cnt"):
                runs, ns = costs.get(p["name"], (0, 0))
                costs[p["name"]] = (runs + p["run_cnt"], ns + p["run_time_ns"])
        cap.stop()
    return costs


def bench_program_cost(base_python: str, runs: int, connections: int = 400) -> None:
    """ns per run of the TCP probes' programs, another nettrail's (main's)
    against this tree's, alternating; kernel BPF stats are on only while this
    process holds the BPF_ENABLE_STATS fd."""
    results: dict[str, list[dict]] = {"base": [], "this tree": []}
    with bpf_stats():
        for _ in range(runs):
            for name, python in (("base", base_python), ("this tree", PYTHON)):
                results[name].append(_program_costs(python, connections))
    print("| program | nettrail | runs per capture | ns per run: median (min–max) |")
    print("|---|---|---|---|")
    for program in ("tp_state", "tp_destroy", "pass_conns", "pass_all"):
        for name, costs in results.items():
            per = [c[program][1] / c[program][0] for c in costs if program in c]
            if not per:
                continue  # not in that nettrail
            count = statistics.median(c[program][0] for c in costs if program in c)
            print(f"| {program} | {name} | {count:,.0f} | {statistics.median(per):.0f} "
                  f"({min(per):.0f}–{max(per):.0f}) |")


@contextmanager
def cgroup_programs(probe: str, programs: tuple[str, ...], path: str | None = None
                    ) -> Iterator[BpfObject]:
    """A probe's cgroup_skb programs alone on the cgroup v2 root, run for
    every packet of every socket; `path`: another build of its object (an
    A/B against main)."""
    from nettrail.capture.libbpf import BpfObject
    from nettrail.capture.loader import object_path
    from nettrail.capture.probes.dns_wire import cgroup2_root
    obj = BpfObject(path or str(object_path(probe)))
    obj.keep_only(programs)
    obj.load()
    cgroup = os.open(cgroup2_root(), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for program in programs:
            obj.attach_cgroup(program, cgroup)
        yield obj
    finally:
        os.close(cgroup)
        obj.close()


def wire_programs(path: str | None = None) -> AbstractContextManager[BpfObject]:
    """Wire-level DNS alone (`--probes +wire` adds it)."""
    from nettrail.capture.probes.dns_wire import PROGRAMS
    return cgroup_programs("dns_wire", PROGRAMS, path)


def bench_wire(pairs: int, seconds: int) -> None:
    """The 64-byte TCP_NODELAY A/B with and without wire-level DNS's programs."""
    without, with_ = [], []
    for _ in range(pairs):
        without.append(iperf("64", True, seconds))
        with wire_programs():
            with_.append(iperf("64", True, seconds))
    a, b = statistics.median(without), statistics.median(with_)
    print("| writes | without: Gbit/s median (min–max) | with wire-level DNS | loss | pairs |")
    print("|---|---|---|---|---|")
    print(f"| 64 B, TCP_NODELAY | {_spread(without)} | {_spread(with_)} | "
          f"{100 * (1 - b / a):.1f} % | {pairs} |")


DNS_CLIENT = """
import socket, struct, sys, time
q = b"\\x04fast\\x08nettrail\\x04test\\x00" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", 53))
start = time.monotonic()
for i in range(int(sys.argv[1])):
    s.send(struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + q)
    s.recv(512)
print(time.monotonic() - start)
"""


def bench_wire_dns(rounds: int, queries: int, against: str) -> None:
    """The wire programs' cost on DNS itself, A/B against another build
    (`--against`, e.g. main's dns_wire.bpf.o): `queries` answered queries,
    one at a time, to the test server in a namespace of their own; the
    programs' own run time (kernel.bpf_stats_enabled) per DNS message, and
    the client's wall time per query."""
    ns = f"nt-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    server = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON,
                               str(ROOT / "tests" / "tools" / "dnsserver.py")],
                              stdout=subprocess.PIPE, text=True)
    results: dict[str, tuple[list[float], list[float]]] = {"main": ([], []), "this": ([], [])}
    try:
        assert server.stdout.readline().strip() == "ready"
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as stats:
            stats.write("1")
        for _ in range(rounds):
            for label, path in (("main", against), ("this", None)):
                with wire_programs(path) as obj:
                    out = subprocess.run(["ip", "netns", "exec", ns, PYTHON, "-c", DNS_CLIENT,
                                          str(queries)], capture_output=True, text=True,
                                         check=True).stdout
                    infos = obj.program_infos()
                run_ns = sum(i.run_time_ns for i in infos.values())
                runs = sum(i.run_cnt for i in infos.values())
                results[label][0].append(run_ns / runs if runs else 0.0)
                results[label][1].append(float(out) / queries * 1e6)
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as stats:
            stats.write("0")
        server.kill()
        server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print("| build | ns per program run, median (min–max) | µs per query, median (min–max) "
          "| rounds |")
    print("|---|---|---|---|")
    for label, (per_run, per_query) in results.items():
        print(f"| {label} | {_spread(per_run)} | {_spread(per_query)} | {rounds} |")


def iperf_udp(length: str, seconds: int) -> float:
    """Loopback UDP, no rate limit: datagrams per second received (iperf3 -u)."""
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", port, "-u", "-b", "0", "-l",
                          length, "-t", str(seconds), "-J"], capture_output=True, text=True,
                         check=True).stdout
    server.wait(timeout=10)
    end = json.loads(out)["end"]["sum"]
    return (end["packets"] - end["lost_packets"]) / end["seconds"]


def bench_udp(pairs: int, seconds: int) -> None:
    """The udp probe's programs (`--probes +udp`) alone: 64 B UDP datagrams
    per second and 64 B TCP_NODELAY throughput over loopback without and with
    them, alternating; the programs' own ns per run while UDP flowed (each
    datagram over loopback runs egress for its sender and ingress for its
    receiver)."""
    from nettrail.capture.probes.udp import PROGRAMS
    udp_without, udp_with, tcp_without, tcp_with = [], [], [], []
    per_run: dict[str, list[float]] = {"UDP": [], "TCP": []}

    def totals(obj: BpfObject) -> tuple[int, int]:
        infos = obj.program_infos().values()
        return sum(i.run_cnt for i in infos), sum(i.run_time_ns for i in infos)

    with bpf_stats():
        for _ in range(pairs):
            udp_without.append(iperf_udp("64", seconds))
            tcp_without.append(iperf("64", True, seconds))
            with cgroup_programs("udp", PROGRAMS) as obj:
                udp_with.append(iperf_udp("64", seconds))
                udp_runs, udp_ns = totals(obj)
                tcp_with.append(iperf("64", True, seconds))
                runs, ns = totals(obj)
            per_run["UDP"].append(udp_ns / max(udp_runs, 1))
            per_run["TCP"].append((ns - udp_ns) / max(runs - udp_runs, 1))
    print("| traffic | without: median (min–max) | with the udp programs | loss of the "
          "medians | pairs |")
    print("|---|---|---|---|---|")
    for label, unit, a, b in (("64 B UDP datagrams", "kdatagrams/s", udp_without, udp_with),
                              ("64 B TCP, TCP_NODELAY", "Gbit/s", tcp_without, tcp_with)):
        scale = 1e-3 if unit == "kdatagrams/s" else 1.0
        a, b = [v * scale for v in a], [v * scale for v in b]
        print(f"| {label} ({unit}) | {_spread(a)} | {_spread(b)} | "
              f"{100 * (1 - statistics.median(b) / statistics.median(a)):.1f} % | {pairs} |")
    for proto, values in per_run.items():
        print(f"\nns per program run while {proto} flowed: {_spread(values)}")


# -- sessions ---------------------------------------------------------------------

def tally(ends: list[tuple[int, int, int]], port: int) -> tuple[int, int]:
    """(records, accepted-side records owned by a client pid) from (pid, lport, rport)."""
    ends = [e for e in ends if port in (e[1], e[2])]
    clients = {pid for pid, _, rport in ends if rport == port}
    return len(ends), sum(1 for pid, lport, _ in ends if lport == port and pid in clients)


def our_sessions(path: Path, port: int) -> tuple[int, int, int]:
    """(records, accepted sessions given a client pid, records without the
    exact bytes or an owner): connstorm's server sends 1 byte, its client none."""
    records = [r for r in lines(path) if port in (r["lport"], r["rport"])]
    inexact = sum(1 for r in records if r["pid"] is None or (r["tx_bytes"], r["rx_bytes"]) != (
        (1, 0) if r["lport"] == port else (0, 1)))
    return (*tally([(r["pid"], r["lport"], r["rport"]) for r in records], port), inexact)


def tcplife_sessions(output: str, port: int) -> tuple[int, int]:
    """Parse libbpf-tools tcplife: PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS."""
    ends = []
    for line in output.splitlines():
        f = line.split()
        if len(f) >= 9 and f[0].isdigit() and f[3].isdigit() and f[5].isdigit():
            ends.append((int(f[0]), int(f[3]), int(f[5])))
    return tally(ends, port)


@contextmanager
def tracefs() -> Iterator[None]:
    """libbpf-tools' tcplife attaches through tracefs (nettrail does not need it)."""
    mounted = Path("/sys/kernel/tracing/events").exists()
    if not mounted:
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=True)
    try:
        yield
    finally:
        if not mounted:
            subprocess.run(["umount", "/sys/kernel/tracing"], check=True)


def bench_sessions(rate: int, seconds: int, loaded: bool = False, *extra: str) -> None:
    """`rate` sessions/s for `seconds` under a default full capture (`extra`:
    its further options) and tcplife; `loaded`: with two CPU hogs and a
    second storm of the same rate running through it."""
    storm = build_tool("connstorm")
    tcplife = shutil.which("tcplife")
    with tracefs(), capture("1", str(seconds + 60), *extra) as cap, \
            tempfile.TemporaryFile("w+") as peer_out, contextlib.ExitStack() as load:
        peer = subprocess.Popen([tcplife], stdout=peer_out, stderr=subprocess.DEVNULL) \
            if tcplife else None
        time.sleep(2)
        if loaded:
            print(f"loaded: 2 CPU hogs and a second storm of {rate}/s for {seconds + 2} s")
            for _ in range(2):
                hog = load.enter_context(subprocess.Popen(["yes"], stdout=subprocess.DEVNULL))
                load.callback(hog.kill)
            # waited for, not killed: it ends its own server processes
            load.enter_context(subprocess.Popen([storm, str(rate), str(seconds + 2)],
                                                stdout=subprocess.DEVNULL))
        done, port = map(int, subprocess.run([storm, str(rate), str(seconds)], capture_output=True,
                                             text=True, check=True).stdout.split())
        load.close()
        time.sleep(2)
        result = cap.stop()
        ours, ours_wrong, inexact = our_sessions(cap.directory / "tcplife.jsonl", port)
        # past the per-interval line budget, sessions are counted in summaries, not lost
        summary = cap.directory / "tcplife_summary.jsonl"
        summarised = sum(r["sessions"] for r in lines(summary) if r["port"] in (port, None)) \
            if summary.exists() else 0
        if peer:
            peer.send_signal(2)
            peer.wait(timeout=10)
            peer_out.seek(0)
            theirs, theirs_wrong = tcplife_sessions(peer_out.read(), port)
    expected = 2 * done
    print("| tool | sessions made | records expected (both ends) | records logged | "
          "counted in summaries (line budget) | missing | "
          "accepted sessions given the client's pid | records without exact bytes or owner "
          "| lost events |")
    print("|---|---|---|---|---|---|---|---|---|")
    lost = sum(result["meta"]["lost_events"].values())
    print(f"| nettrail | {done} | {expected} | {ours} | {summarised} | "
          f"{100 * (expected - ours - summarised) / expected:.2f} % | {ours_wrong} | {inexact} "
          f"| {lost} |")
    if peer:
        print(f"| libbpf-tools tcplife (same run) | {done} | {expected} | {theirs} | – | "
              f"{100 * (expected - theirs) / expected:.2f} % | {theirs_wrong} | – | – |")
    meta = result["meta"]
    print(f"\nrate {rate}/s for {seconds} s; capture process: {result['cpu_s']:.1f} s CPU "
          f"over {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB; "
          f"intervals {meta['intervals_done']} done, {meta.get('intervals_late', '?')} late; "
          f"lost by cause {meta.get('lost_events_by_cause')}")


# -- many open sockets -----------------------------------------------------------

HOLDER = """
import resource, socket, sys
pairs = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (2 * pairs + 100, 2 * pairs + 100))
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(4096)
held = []
for _ in range(pairs):
    held.append(socket.create_connection(lsock.getsockname()))
    held.append(lsock.accept()[0])
print("ready", flush=True)
sys.stdin.readline()
"""

PASS_TIMER = """
import statistics, sys, time
from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.probes.bandwidth import BandwidthProbe
probe = BandwidthProbe(RecordContext(Clock(), "bench"))
probe.start({})
wall, cpu = [], []
for _ in range(int(sys.argv[1])):
    time.sleep(1)  # passes 1 s apart, as a capture with 1 s intervals makes them
    start, start_cpu = time.perf_counter(), time.process_time()
    probe.take_interval()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
probe.close()
print(statistics.median(wall) * 1000, max(wall) * 1000, statistics.median(cpu) * 1000)
"""


@contextmanager
def hold_sockets(namespaces: int, sockets: int) -> Iterator[None]:
    """`sockets` open TCP sockets (connected pairs on loopback) held by one
    process in each of `namespaces` new network namespaces."""
    names = [f"nt-bench-{i}" for i in range(namespaces)]
    holders = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
            holders.append(subprocess.Popen(
                ["ip", "netns", "exec", name, PYTHON, "-c", HOLDER,
                 str(sockets // namespaces // 2)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True))
        for h in holders:
            assert h.stdout.readline().strip() == "ready"
        yield
    finally:
        for h in holders:
            h.kill()
            h.wait()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


STEADY_AFTER_S = 2.5


def bench_sockets(namespaces: int, sockets: int, seconds: int, runs: int) -> None:
    """One pass over every held socket, and the capture process's cost, with
    many open TCP sockets in many network namespaces (1 s intervals). The
    capture's CPU is taken twice: in steady state (from its /proc stat, from
    2.5 s after it starts capturing to 2.5 s before its end: every tenth pass,
    which reads every socket, included) and over its whole life (start-up and
    the final listing of every open session included)."""
    with hold_sockets(namespaces, sockets):
        passes = subprocess.run([PYTHON, "-P", "-c", PASS_TIMER, "20"], capture_output=True,
                                text=True, check=True).stdout.split()
        steady, whole, rss = [], [], []
        for _ in range(runs):
            with capture("1", str(seconds), "--probes", "bandwidth,sessions") as cap:
                time.sleep(STEADY_AFTER_S)  # past the first passes, which read every socket
                first = cap.cpu_s(), time.monotonic()
                time.sleep(seconds - 2 * STEADY_AFTER_S)
                steady.append(100 * (cap.cpu_s() - first[0]) / (time.monotonic() - first[1]))
                result = cap.wait()
                whole.append(100 * result["cpu_s"] / result["wall_s"])
                rss.append(result["peak_rss_mb"])
                listed = sum(1 for r in lines(cap.directory / "tcplife.jsonl")
                             if r["state"] == "open")
                # past the line budget, counted in the summary log instead
                summarised = json.loads((cap.directory / "meta.json").read_text())[
                    "line_budgets"]["sessions"]["summarised"]
    print("| open TCP sockets | namespaces | one pass: wall (median of 20, max), CPU (median) | "
          "capture CPU, steady (% of one core, median) | capture CPU, whole life | "
          "peak RSS (MB, median) | open sessions listed + summarised | runs |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {sockets:,} | {namespaces} | {float(passes[0]):.1f} ms (max "
          f"{float(passes[1]):.1f} ms), {float(passes[2]):.1f} ms | "
          f"{statistics.median(steady):.1f} % | {statistics.median(whole):.1f} % | "
          f"{statistics.median(rss):.0f} | {listed:,} + {summarised:,} | {runs} |")


# -- lookups ----------------------------------------------------------------------

LOOKER = """
import socket, sys, time
rate, seconds = int(sys.argv[1]), int(sys.argv[2])
start = time.monotonic()
for i in range(rate * seconds):
    time.sleep(max(0.0, start + i / rate - time.monotonic()))
    socket.getaddrinfo("localhost", None)
"""


def bench_lookups(rate: int, seconds: int) -> None:
    with capture("1", str(seconds + 60)) as cap:
        time.sleep(1)
        looker = subprocess.Popen([PYTHON, "-c", LOOKER, str(rate), str(seconds)])
        looker.wait()
        time.sleep(1)
        result = cap.stop()
        logged = sum(1 for r in lines(cap.directory / "dns.jsonl")
                     if r["pid"] == looker.pid and r["name"] == "localhost")
    print("| lookups made | logged | lost events |")
    print("|---|---|---|")
    print(f"| {rate * seconds} ({rate}/s for {seconds} s) | {logged} | "
          f"{result['meta']['lost_events']['dns']} |")


def bench_lookup_burst(base_python: str | None, runs: int, count: int, rate: int) -> None:
    """A burst of `count` getaddrinfo("localhost") calls at `rate`/s (C,
    2 processes) under a default full capture: lookups logged and lost, by
    cause. With `base_python`, A/B in one run against that nettrail."""
    storm = build_tool("lookstorm")
    trees = [("base", base_python), ("this", PYTHON)] if base_python else [("this", PYTHON)]
    print(f"{load_average()}\n")
    print("| tree | lookups made | achieved rate | logged | missing | lost by cause | "
          "capture CPU | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for _ in range(runs):
        for tree, python in trees:
            with capture("1", "60", python=python) as cap:
                out = subprocess.run([storm, "localhost", str(count), str(rate), "2"],
                                     capture_output=True, text=True, check=True).stdout.split()
                done, seconds, pids = int(out[0]), float(out[1]), {int(p) for p in out[2:]}
                result = cap.stop()
                logged = sum(1 for r in lines(cap.directory / "dns.jsonl")
                             if r["pid"] in pids and r["name"] == "localhost")
            lost = {f"{probe} {cause}": n for probe, causes in
                    result["meta"]["lost_events_by_cause"].items()
                    for cause, n in causes.items() if n}
            print(f"| {tree} | {done} | {done / seconds:,.0f}/s | {logged} | {done - logged} | "
                  f"{lost or 0} | {result['cpu_s']:.1f} s | {result['peak_rss_mb']:.0f} MB |")
            sys.stdout.flush()


def bench_lookup_cost(base_python: str | None, runs: int, count: int) -> None:
    """µs per getaddrinfo("localhost") of one process calling it `count` times
    as fast as it can: without a capture, under `base_python`'s default full
    capture and under this tree's, alternating in one run."""
    storm = build_tool("lookstorm")
    trees = [("no capture", None), *([("base", base_python)] if base_python else []),
             ("this", PYTHON)]
    per_lookup_us: dict[str, list[float]] = {tree: [] for tree, _ in trees}
    for _ in range(runs):
        for tree, python in trees:
            with capture_by(python):
                out = subprocess.run([storm, "localhost", str(count), "1e9", "1"],
                                     capture_output=True, text=True, check=True).stdout.split()
            per_lookup_us[tree].append(float(out[1]) * 1e6 / count)
    print(f"{load_average()}\n")
    print("| tree | µs per lookup, median (min–max) | runs |")
    print("|---|---|---|")
    for tree, values in per_lookup_us.items():
        print(f"| {tree} | {_spread(values)} | {runs} |")


def bench_connect_cost(base_python: str | None, runs: int, rate: int, seconds: int) -> None:
    """CPU per connection of a connecting workload (connstorm, its processes'
    user and system time) without a capture, under `--probes sessions` and
    under the default full capture (this tree's, and `base_python`'s),
    alternating in one run."""
    storm = build_tool("connstorm")
    arms = [("no capture", None, ()), ("sessions only", PYTHON, ("--probes", "sessions")),
            *([("full capture, base", base_python, ())] if base_python else []),
            ("full capture, this tree", PYTHON, ()),
            ("full capture, this tree, --nice 0", PYTHON, ("--nice", "0"))]
    per_connection_us: dict[str, list[float]] = {arm: [] for arm, _, _ in arms}
    for _ in range(runs):
        for arm, python, extra in arms:
            with capture_by(python, *extra):
                run = Measured(storm, str(rate), str(seconds), stdout=subprocess.PIPE, text=True)
                done = int(run.proc.stdout.read().split()[0])
                per_connection_us[arm].append(run.wait()["cpu_s"] * 1e6 / done)
    print(f"{load_average()}\n")
    print("| capture | workload CPU per connection, µs: median (min–max) | vs none | runs |")
    print("|---|---|---|---|")
    none = statistics.median(per_connection_us["no capture"])
    for arm, values in per_connection_us.items():
        print(f"| {arm} | {_spread(values)} | {100 * (statistics.median(values) / none - 1):+.1f} % "
              f"| {runs} |")


# -- capture process cost ---------------------------------------------------------

def bench_overhead(connections_per_s: list[int], seconds: int, runs: int) -> None:
    """CPU and peak RSS of the capture process under short-connection load.
    Each connection is two session records (one per end) and, per interval,
    two bandwidth rows."""
    storm = build_tool("connstorm")
    print("| load | records written/s | capture CPU (% of one core, median) | "
          "peak RSS (MB, median) | runs |")
    print("|---|---|---|---|---|")
    for rate in connections_per_s:
        cpu, rss, records = [], [], []
        for _ in range(runs):
            with capture("1", str(seconds + 60)) as cap:
                time.sleep(1)
                subprocess.run([storm, str(rate), str(seconds)], check=True,
                               capture_output=True)
                result = cap.stop()
                cpu.append(100 * result["cpu_s"] / result["wall_s"])
                rss.append(result["peak_rss_mb"])
                records.append(sum(sum(1 for _ in (cap.directory / n).open())
                                   for n in ("tcplife.jsonl", "tcptop.jsonl")))
        print(f"| {rate:,} connections/s = {2 * rate:,} session events/s | "
              f"{statistics.median(records) / seconds:,.0f} | {statistics.median(cpu):.1f} % | "
              f"{statistics.median(rss):.0f} | {runs} |")


# -- report rendering -------------------------------------------------------------

IDENTITY = {"nspid": None, "cgroup": None, "container": None, "unit": None}


def synthetic_meta(directory: Path, host: str) -> None:
    """meta.json of a synthetic capture: 60 intervals of 5 s."""
    directory.mkdir(parents=True)
    meta = {"format": "nettrail-capture/2", "version": "bench", "host": host,
            "kernel": "bench", "started_at": "2026-01-02T03:04:05.000Z",
            "ended_at": "2026-01-02T03:09:05.000Z", "interval_s": 5.0, "count": 60,
            "intervals_done": 60, "interrupted": False, "trigger": "manual",
            "filters": {"pids": [], "probes": ["bandwidth", "sessions", "dns"]},
            "probes": {p: {"status": "ok", "hook": "bench", "error": None}
                       for p in ("bandwidth", "sessions", "dns")},
            "lost_events": {"bandwidth": 0, "sessions": 0, "dns": 0}, "summary": None,
            "title": None, "note": None}
    (directory / "meta.json").write_text(json.dumps(meta))


def synthetic_capture(directory: Path, bandwidth: int, sessions: int, lookups: int,
                      names: int = 200) -> None:
    """A nettrail-capture/2 capture of the given size (60 intervals of 5 s, 400
    processes, `names` hostnames: a lookup flood has one per lookup)."""
    synthetic_meta(directory, "bench")
    start = 1_767_323_045.0
    with (directory / "tcptop.jsonl").open("w") as f:
        for i in range(bandwidth):
            pid = 1000 + i % 400
            f.write(json.dumps({"kind": "bandwidth", "ts": start + 5 + (i % 60) * 5,
                                "interval": 1 + i % 60, "interval_s": 5.0, "host": "bench",
                                "pid": pid, "comm": f"proc{pid}", **IDENTITY,
                                "netns": 4026531840, "family": "ipv4", "laddr": "10.0.0.1",
                                "lport": 30000 + i % 20000, "raddr": f"10.1.{i % 250}.{i % 200}",
                                "rport": 443, "side": "client", "rx_bytes": i * 7 % 100000,
                                "tx_bytes": i * 13 % 50000, "retrans_bytes": 0,
                                "srtt_us": 200 + i % 900}) + "\n")
    with (directory / "tcplife.jsonl").open("w") as f:
        for i in range(sessions):
            f.write(json.dumps({"kind": "session", "ts": start + i * 0.003, "host": "bench",
                                "pid": 2000 + i % 50, "comm": "client", **IDENTITY,
                                "netns": 4026531840, "family": "ipv4", "laddr": "10.0.0.1",
                                "lport": 30000 + i % 30000, "raddr": f"10.2.0.{i % 100}",
                                "rport": 80, "side": "client", "tx_bytes": i % 5000,
                                "rx_bytes": i % 90000, "retrans_segs": int(i % 97 == 0),
                                "srtt_us": 300, "opened_at": start + i * 0.003 - 0.05,
                                "duration_ms": 50.0 + i % 900, "state": "closed",
                                "end": "refused" if i % 101 == 0 else "normal"}) + "\n")
    with (directory / "dns.jsonl").open("w") as f:
        for i in range(lookups):
            f.write(json.dumps({"kind": "lookup", "ts": start + i * 300 / lookups,
                                "host": "bench", "pid": 3000 + i % 30, "comm": "resolver",
                                **IDENTITY, "source": "libc", "name": f"host{i % names}.example",
                                "name_truncated": False, "qtype": None,
                                "function": "getaddrinfo", "server": None,
                                "latency_ms": 0.5 + (i * 37 % 3000) / 10, "ok": i % 50 != 0,
                                "error": None if i % 50 else "EAI_AGAIN",
                                "addresses": [f"10.1.{i % 250}.{i % 200}"],
                                "pending": False, "resolved_by": "dns",
                                "call_ts": None}) + "\n")


# The baseline the render is held to: orjson parsing the same files, nothing else
PARSE_ONLY = ("import orjson, sys\n"
              "for name in sys.argv[1:]:\n"
              "    with open(name, 'rb') as f:\n"
              "        for line in f:\n"
              "            orjson.loads(line)\n")


def bench_report(runs: int, bandwidth: int, sessions: int, lookups: int,
                 names: int = 200) -> None:
    """The render and orjson's parse of the same logs, in pairs (A B A B …):
    their ratio holds while the shared machine's speed drifts."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "big"
        synthetic_capture(directory, bandwidth, sessions, lookups, names)
        logs = [str(directory / n) for n in ("tcptop.jsonl", "tcplife.jsonl", "dns.jsonl")]
        times, rss, parse, ratios = [], [], [], []
        for _ in range(runs):
            result = Measured(PYTHON, "-P", "-m", "nettrail", "report", str(directory),
                              stdout=subprocess.DEVNULL).wait()
            assert result["returncode"] == 0
            parsed = Measured(PYTHON, "-c", PARSE_ONLY, *logs).wait()
            times.append(result["cpu_s"])
            rss.append(result["peak_rss_mb"])
            parse.append(parsed["cpu_s"])
            ratios.append(result["cpu_s"] / parsed["cpu_s"])
        size = (directory / "report.html").stat().st_size / 1e6
        total = sum(Path(n).stat().st_size for n in logs) / 1e6
    print(load_average())
    print("| capture (rows: bandwidth / sessions / lookups, distinct names) | logs | "
          "render CPU (median) | orjson parse CPU (median) | render / parse (median of pairs) "
          "| peak RSS (median) | report size | runs |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {bandwidth:,} / {sessions:,} / {lookups:,}, {min(names, lookups):,} | "
          f"{total:.0f} MB | {statistics.median(times):.2f} s | {statistics.median(parse):.2f} s "
          f"| {statistics.median(ratios):.2f} | {statistics.median(rss):.0f} MB | "
          f"{size:.2f} MB | {runs} |")


# -- a connection storm -----------------------------------------------------------

STORM_RATE = 20_000  # sessions a second, as in the storm issue 26 saw (535,389 in 26 s)


def storm_session(i: int, start: float) -> dict:
    ts = start + i / STORM_RATE
    return {"kind": "session", "ts": ts, "host": "bench", "pid": 2000 + i % 50,
            "comm": "client", **IDENTITY, "container_name": None, "pod": None,
            "pod_namespace": None, "pod_uid": None, "netns": 4026531840, "family": "ipv4",
            "laddr": "10.0.0.1", "lport": 30000 + i % 30000, "raddr": f"10.2.0.{i % 100}",
            "rport": 80, "side": "client", "tx_bytes": 100, "rx_bytes": i % 9000,
            "retrans_segs": int(i % 997 == 0), "srtt_us": 300, "opened_at": ts - 0.002,
            "duration_ms": 2.0 + i % 50 / 10, "state": "closed",
            "end": "refused" if i % 101 == 0 else "normal", "connect_us": 90,
            "syn_retrans_segs": 0, "min_rtt_us": 250}


def synthetic_storm(directory: Path, sessions: int, interval_lines: int | None) -> int:
    """A capture of `sessions` at STORM_RATE in 5 s intervals: every one a line
    (interval_lines None), or written as the capture writes them past a
    budget of `interval_lines` a interval. Returns the session lines."""
    from nettrail.capture.budget import SessionBudget
    synthetic_meta(directory, "bench")
    start, per_interval = 1_767_323_045.0, 5 * STORM_RATE
    budget = SessionBudget(interval_lines, "bench") if interval_lines is not None else None
    written = 0
    with (directory / "tcplife.jsonl").open("w") as log, \
            (directory / "tcplife_summary.jsonl").open("w") as summaries:
        for interval, first in enumerate(range(0, sessions, per_interval), 1):
            records = [storm_session(i, start) for i in range(
                first, min(first + per_interval, sessions))]
            if budget:
                budget.new_interval()
                records = budget.admit(records)
                for r in budget.take(start + 5 * interval, interval):
                    summaries.write(json.dumps(r) + "\n")
            log.writelines(json.dumps(r) + "\n" for r in records)
            written += len(records)
    return written


# synthetic_storm with the installed nettrail's capture side (not the source tree's)
STORM_WRITER = ("import sys\n"
                "import nettrail.capture.budget\n"
                "sys.path.append(sys.argv[1])\n"
                "from pathlib import Path\n"
                "from bench.run import synthetic_storm\n"
                "budget = int(sys.argv[4]) if sys.argv[4] != '-' else None\n"
                "print(synthetic_storm(Path(sys.argv[2]), int(sys.argv[3]), budget))\n")
INTERVAL_LINES = 20_000  # nettrail/format/logs/sessions.py's default


def bench_storm(runs: int, sessions: int) -> None:
    """The render of one storm, all lines against the default budget's logs,
    in pairs (A B A B …)."""
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {"every session a line": None, f"budget {INTERVAL_LINES:,} lines/interval":
                 INTERVAL_LINES}
        lines = {name: int(subprocess.run(
            [PYTHON, "-P", "-c", STORM_WRITER, str(ROOT), str(Path(tmp) / str(i)),
             str(sessions), str(budget) if budget is not None else "-"], check=True,
            capture_output=True, text=True).stdout)
            for i, (name, budget) in enumerate(kinds.items())}
        sizes = {name: sum(f.stat().st_size for f in (Path(tmp) / str(i)).glob("*.jsonl"))
                 for i, name in enumerate(kinds)}
        results: dict[str, list[dict]] = {name: [] for name in kinds}
        for _ in range(runs):
            for i, name in enumerate(kinds):
                result = Measured(PYTHON, "-P", "-m", "nettrail", "report", str(Path(tmp) / str(i)),
                                  stdout=subprocess.DEVNULL).wait()
                assert result["returncode"] == 0
                results[name].append(result)
    print(load_average())
    print(f"{sessions:,} sessions at {STORM_RATE:,}/s in 5 s intervals\n")
    print("| logs | session lines | log size | render wall (median) | render CPU (median) "
          "| peak RSS (median) | runs |")
    print("|---|---|---|---|---|---|---|")
    for name, measured in results.items():
        print(f"| {name} | {lines[name]:,} | {sizes[name] / 1e6:.0f} MB | "
              f"{statistics.median(r['wall_s'] for r in measured):.2f} s | "
              f"{statistics.median(r['cpu_s'] for r in measured):.2f} s | "
              f"{statistics.median(r['peak_rss_mb'] for r in measured):.0f} MB | {runs} |")


# -- DNS records written by user space ------------------------------------------

# struct dns_event bytes -> records -> JSON lines in a capture's dns.jsonl: the
# capture's whole user-space path for lookups, records per CPU second
DNS_WRITE = """
import os, sys, tempfile, time
from pathlib import Path
from nettrail.capture.clock import Clock
from nettrail.capture.events import DnsEvent, RecordContext
from nettrail.capture.logwriter import LogWriter
from nettrail.capture.probes.dns import dns_records
lookups = int(sys.argv[1])
e = DnsEvent(start_ns=1_000_000, end_ns=1_900_000, pid=os.getpid(), function=1, naddrs=1,
             wire_queries=1, comm=b"curl", host=b"example.com")
e.families[0], e.addrs[0][:4] = 2, [10, 0, 0, 1]
event = bytes(e)
if hasattr(DnsEvent, "host_len"):  # sent as long as its name
    e.host_len = len(b"example.com") + 1
    event = bytes(e)[:DnsEvent.host.offset + e.host_len]
ctx = RecordContext(Clock(), "bench")
with tempfile.TemporaryDirectory() as tmp:
    writer = LogWriter(Path(tmp) / "capture")
    start = time.process_time()
    for _ in range(lookups // 1000):
        writer.write("dns", dns_records(event * 1000, ctx, True, lambda pid: 3))
    writer.flush()
    print(lookups / (time.process_time() - start))
"""


def bench_dns_write(runs: int, lookups: int, baseline: str) -> None:
    """A/B in one run: records per CPU second of DNS_WRITE, `baseline`
    against this tree, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        base = str(baseline_package(Path(tmp) / "baseline", baseline))
        rates: dict[str, list[float]] = {baseline: [], "this": []}
        for _ in range(runs):
            for name, path in ((baseline, base), ("this", None)):
                out = subprocess.run([PYTHON, "-P", "-c", DNS_WRITE, str(lookups)],
                                     env=env_with(path), capture_output=True, text=True,
                                     check=True).stdout
                rates[name].append(float(out))
    print(load_average())
    print("| tree | lookups written per CPU second (median, min-max) | runs |")
    print("|---|---|---|")
    for name, done in rates.items():
        print(f"| {name} | {statistics.median(done):,.0f} ({min(done):,.0f}-{max(done):,.0f}) "
              f"| {runs} |")


# -- fleet reports ----------------------------------------------------------------

def fleet_address(k: int) -> str:
    return f"10.0.{k // 250}.{k % 250 + 1}"


def synthetic_fleet(root: Path, hosts: int, sessions: int) -> list[Path]:
    """`hosts` captures of `sessions` sessions each (in 300 s), host k's
    clients talking to host k+1's server on port 5432 (a ring): every
    session of a fleet of two or more has its other end in the next or the
    previous capture, 40,000 client ports reused every 120 s."""
    start = 1_767_323_045.0
    directories = []
    for k in range(hosts):
        directory = root / f"host-{k}"
        synthetic_meta(directory, f"host-{k}")
        for name in ("tcptop.jsonl", "dns.jsonl"):
            (directory / name).write_text("")
        me, server, client = (fleet_address(k), fleet_address((k + 1) % hosts),
                              fleet_address((k - 1) % hosts))
        with (directory / "tcplife.jsonl").open("w") as f:
            for i in range(sessions):
                port, ts = 20000 + (i // 2) % 40000, start + i * 300 / sessions
                ends = ((me, port, server, 5432, "client") if i % 2 == 0
                        else (me, 5432, client, port, "server"))
                laddr, lport, raddr, rport, side = ends
                f.write(json.dumps({"kind": "session", "ts": ts, "host": f"host-{k}",
                                    "pid": 2000 + i % 50, "comm": side, **IDENTITY,
                                    "netns": 4026531840, "family": "ipv4", "laddr": laddr,
                                    "lport": lport, "raddr": raddr, "rport": rport,
                                    "side": side, "tx_bytes": i % 5000, "rx_bytes": i % 90000,
                                    "retrans_segs": int(i % 97 == 0), "srtt_us": 300,
                                    "opened_at": ts - 0.05, "duration_ms": 50.0,
                                    "state": "closed", "end": "normal"}) + "\n")
        directories.append(directory)
    return directories


# the wheel's package folders (pyproject.toml's package-dir): where each comes from
PACKAGE_DIRS = {"nettrail": ".", "capture": "capture", "report": "report",
                "schedule": "schedule", "templates": "templates"}


def baseline_package(root: Path, rev: str) -> Path:
    """nettrail as it is at git `rev`, its Python and templates from git and
    the installed BPF objects: put first on PYTHONPATH, it renders as `rev`."""
    installed = subprocess.run([PYTHON, "-P", "-c", "import nettrail; print(nettrail.__file__)"],
                               capture_output=True, text=True, check=True).stdout.strip()
    package = root / "nettrail"
    for source, target in PACKAGE_DIRS.items():
        names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, source], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
        for name in names:
            out = package / target / Path(name).relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT,
                                           capture_output=True, check=True).stdout)
    objects = Path(installed).parent / "capture" / "bpf_objects"
    shutil.copytree(objects, package / "capture" / "bpf_objects")
    return root


def env_with(pythonpath: str | None) -> dict[str, str]:
    """This environment, with `pythonpath` (a baseline_package) first if given."""
    return {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}


def render_fleet(directories: list[Path], out: Path, pythonpath: str | None,
                 timeout_s: float) -> dict | None:
    """One render; None when it took longer than `timeout_s`."""
    run = Measured(PYTHON, "-P", "-m", "nettrail", "report", *map(str, directories),
                   "-o", str(out), stdout=subprocess.DEVNULL, env=env_with(pythonpath))
    try:
        run.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        run.signal(9)
        run.wait()
        return None
    result = run.wait()
    assert result["returncode"] == 0
    return result


def bench_fleet(runs: int, sessions: int, fleet_sizes: list[int], baseline: str,
                timeout_s: float) -> None:
    """A/B in one run: `baseline` against this tree, alternating, on fleets
    of each size (a fleet of one is a plain report); the largest fleet gets
    half the runs. Rows print as they complete."""
    with tempfile.TemporaryDirectory() as tmp:
        directories = synthetic_fleet(Path(tmp) / "fleet", max(fleet_sizes), sessions)
        base = str(baseline_package(Path(tmp) / "baseline", baseline))
        print("| captures | sessions | tree | render wall (median) | CPU (median) | "
              "CPU / one capture's | peak RSS | runs | load average (1 min) |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        one: dict[str, float] = {}
        for size in fleet_sizes:
            results: dict[str, list[dict | None]] = {baseline: [], "this": []}
            for _ in range(runs if size < max(fleet_sizes) else max(1, runs // 2)):
                for name, path in ((baseline, base), ("this", None)):
                    results[name].append(render_fleet(directories[:size],
                                                      Path(tmp) / "out.html", path, timeout_s))
            for name, done in results.items():
                if all(done):
                    wall, cpu, rss = (statistics.median(r[key] for r in done)  # type: ignore[index]
                                      for key in ("wall_s", "cpu_s", "peak_rss_mb"))
                    one.setdefault(name, cpu)
                    shown = f"{wall:.1f} s | {cpu:.1f} s | {cpu / one[name]:.1f}x | {rss:.0f} MB"
                else:
                    shown = f"> {timeout_s:.0f} s | – | – | –"
                print(f"| {size} | {size * sessions:,} | {name} | {shown} | {len(done)} | "
                      f"{os.getloadavg()[0]:.1f} |", flush=True)


def bench_fleet_ratio(rounds: int, sessions: int, hosts: int, timeout_s: float) -> None:
    """This tree's 10-capture (`hosts`) render against its one-capture
    render, in rounds (one, then the fleet): the ratio of each round, so
    that the machine's drift between minutes does not enter it."""
    with tempfile.TemporaryDirectory() as tmp:
        directories = synthetic_fleet(Path(tmp) / "fleet", hosts, sessions)
        print(f"| round | one capture: CPU | {hosts} captures: CPU | ratio | load average |")
        print("|---|---|---|---|---|", flush=True)
        ratios = []
        for n in range(1, rounds + 1):
            one, fleet = (render_fleet(directories[:size], Path(tmp) / "out.html", None,
                                       timeout_s) for size in (1, hosts))
            assert one and fleet
            ratios.append(fleet["cpu_s"] / one["cpu_s"])
            print(f"| {n} | {one['cpu_s']:.1f} s | {fleet['cpu_s']:.1f} s | {ratios[-1]:.1f}x | "
                  f"{os.getloadavg()[0]:.1f} |", flush=True)
        print(f"\nmedian ratio {statistics.median(ratios):.1f}x over {rounds} rounds")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", nargs="*", default=["throughput", "wire", "udp", "sessions", "sockets",
                                                "lookups", "overhead", "report", "flood",
                                                "storm",
                                                "fleet"])
    p.add_argument("--pairs", type=int, default=9)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10, help="sessions: the storm's length")
    p.add_argument("--baseline", default="main",
                   help="fleet, dns-write: the git revision to compare with")
    p.add_argument("--fleet-sizes", default="1,2,10", help="fleet: captures per report")
    p.add_argument("--timeout", type=float, default=600, help="fleet: seconds per render")
    p.add_argument("--against", help="wire-dns: the dns_wire.bpf.o to compare with "
                   "(e.g. main's build)")
    p.add_argument("--base-python", help="versus: the python of the nettrail to compare with")
    args = p.parse_args()
    for which in args.which:
        print(f"\n### {which}\n")
        if which == "throughput":
            bench_throughput(args.pairs, seconds=3)
        elif which == "versus":
            bench_versus(args.base_python, args.pairs, seconds=3)
        elif which == "listeners":
            bench_listeners(args.pairs, seconds=2)
        elif which == "drops":
            bench_drops(args.pairs, seconds=2)
        elif which == "netstat":
            bench_netstat()
        elif which == "progcost":
            bench_program_cost(args.base_python, args.runs)
        elif which == "wire":
            bench_wire(args.pairs, seconds=3)
        elif which == "udp":
            bench_udp(args.pairs, seconds=2)
        elif which == "wire-dns":
            bench_wire_dns(args.runs, queries=5_000, against=args.against)
        elif which == "sessions":
            bench_sessions(rate=20_000, seconds=args.seconds)
        elif which == "sessions-loaded":  # 0 lost with the host loaded (issue 27)
            bench_sessions(20_000, args.seconds, True)
        elif which == "sessions-loaded-nice0":  # the same at the caller's priority
            bench_sessions(20_000, args.seconds, True, "--nice", "0")
        elif which == "sockets":
            bench_sockets(namespaces=10, sockets=100_000, seconds=30, runs=args.runs)
        elif which == "lookups":
            bench_lookups(rate=2_000, seconds=10)
        elif which == "lookup-burst":  # 100,000 lookups at 130k/s: 0 lost (issue 27)
            bench_lookup_burst(args.base_python, args.runs, 100_000, 150_000)
        elif which == "connect-cost":  # at most +10 % per connection (issue 27)
            bench_connect_cost(args.base_python, args.runs, 5_000, 5)
        elif which == "lookup-cost":  # what the dns probe adds to each lookup
            bench_lookup_cost(args.base_python, args.runs, 100_000)
        elif which == "overhead":
            bench_overhead([2_500, 5_000], seconds=10, runs=args.runs)
        elif which == "report":
            bench_report(args.runs, 1_000_000, 100_000, 20_000)
        elif which == "flood":  # a lookup flood by any user: one name per lookup
            bench_report(args.runs, 0, 0, 1_000_000, names=1_000_000)
        elif which == "storm":  # a storm renders within 10 s (issue 26)
            bench_storm(args.runs, 500_000)
        elif which == "dns-write":  # user space turns lookups into lines (issue 27)
            bench_dns_write(args.runs, 100_000, args.baseline)
        elif which == "fleet-ratio":
            bench_fleet_ratio(args.runs, 200_000, 10, args.timeout)
        elif which == "fleet":  # 10 captures of 200,000 sessions: at most 11x one's time
            bench_fleet(args.runs, 200_000, [int(n) for n in args.fleet_sizes.split(",")],
                        args.baseline, args.timeout)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
