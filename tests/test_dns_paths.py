"""DNS wherever the lookup happens (issue 9), against the real kernel, in a
network namespace with the test DNS server: a chroot-style container with
its own musl, a musl container started mid-window, a static glibc program,
Go's own resolver and dig. One capture with wire-level DNS on; each lookup
logged once with the right pid, name, latency band and outcome."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nettrail.format import DNS
from helpers import TOOLS, CaptureRun, NetNs, require_bpf

MUSL_LIBC = Path("/usr/lib/x86_64-linux-musl/libc.so")
MUSL_LOADER = "lib/ld-musl-x86_64.so.1"
# musl sends a query again after timeout/attempts seconds, with the same id
RESOLV = "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n"
# the server answers slow.* after 300 ms; a fast answer has taken over 100 ms
# on a loaded 2-core host (and under its qemu TCG)
FAST_MS, SLOW_MS = (0, 250), (300, 2000)
GIVE_UP_MS = (1900, 4000)  # musl gives up on a name never answered after 2 s
READY_TIMEOUT_S = 10
WINDOW = ("0.5", "240")  # ended by SIGINT once every lookup is made (TCG is slow)


def build(tmp: Path, *command: str) -> None:
    result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=240,
                            env={**os.environ, "GOCACHE": str(tmp / "gocache"),
                                 "GOPATH": str(tmp / "gopath"), "GOPROXY": "off",
                                 "GOFLAGS": "", "CGO_ENABLED": "0"})
    assert result.returncode == 0, result.stderr


def musl_root(base: Path, program: Path) -> Path:
    """A chroot-style container: its own copy of musl, the program, resolver."""
    (base / "lib").mkdir(parents=True)
    (base / "bin").mkdir()
    (base / "etc").mkdir()
    shutil.copy(MUSL_LIBC, base / MUSL_LOADER)
    shutil.copy(program, base / "bin" / "lookup")
    (base / "etc" / "resolv.conf").write_text(RESOLV)
    (base / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    return base


class Waiting:
    """A lookup program that printed "ready" and waits for a line on stdin."""

    def __init__(self, ns: NetNs, *command: str) -> None:
        self.proc = subprocess.Popen(ns.exec_args(*command), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def go(self) -> str:
        out, _ = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0
        return out


def wait_until_probed(run: CaptureRun, path: str) -> None:
    """The capture lists the file in meta.json (rewritten every interval)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            libcs = run.meta()["probes"]["dns"]["libcs"]
        except (OSError, ValueError, KeyError):
            libcs = []
        if any(lib["path"] == path and lib["functions"] for lib in libcs):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} was not probed within {READY_TIMEOUT_S} s")


@dataclass
class Scenario:
    run: CaptureRun
    returncode: int
    stderr: str
    pids: dict[str, int]
    paths: dict[str, str]

    def lookups(self, who: str, source: str) -> list[dict]:
        return [r for r in self.run.records(DNS)
                if r["pid"] == self.pids[who] and r["source"] == source]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, dns_netns: NetNs) -> Scenario:
    require_bpf()
    tmp = tmp_path_factory.mktemp("dnspaths")
    build(tmp, "musl-gcc", "-O2", "-o", "lookup-musl", str(TOOLS / "lookup.c"))
    build(tmp, "gcc", "-static", "-O2", "-o", "lookup-static", str(TOOLS / "lookup.c"))
    build(tmp, "go", "build", "-o", "golookup", str(TOOLS / "golookup.go"))
    chroot = musl_root(tmp / "chroot", tmp / "lookup-musl")
    late = musl_root(tmp / "late", tmp / "lookup-musl")
    static = tmp / "lookup-static"
    ns = dns_netns

    # running before the window, in its own root
    chrooted = Waiting(ns, "unshare", f"--root={chroot}", "/bin/lookup", "-w",
                       "fast.nettrail.test", "missing.nettrail.test", "slow.nettrail.test",
                       "hang.nettrail.test", "x" * 300)
    run = CaptureRun(tmp / "capture", *WINDOW, "--probes", "dns,wire")
    chrooted.go()
    # started during the window: their files are probed within about a second
    late_musl = Waiting(ns, "unshare", f"--root={late}", "/bin/lookup", "-w",
                        "fast.nettrail.test", "servfail.nettrail.test")
    wait_until_probed(run, str(late / MUSL_LOADER))
    late_musl.go()
    static_glibc = Waiting(ns, str(static), "-w", "fast.nettrail.test", "missing.nettrail.test")
    wait_until_probed(run, str(static))
    static_glibc.go()
    pids = {"chroot": chrooted.proc.pid, "late": late_musl.proc.pid,
            "static": static_glibc.proc.pid}
    # resolvers that bypass libc (Go's threads send: the process is the owner)
    dig = "dig", "+tries=1", "+time=2", "@127.0.0.1"
    for who, command in (
            ("go", ("env", "GODEBUG=netdns=go", str(tmp / "golookup"), "fast.nettrail.test",
                    "missing.nettrail.test")),
            ("dig", (*dig, "fast.nettrail.test", "servfail.nettrail.test")),
            ("dig_tcp", (*dig, "+tcp", "slow.nettrail.test")),
            ("dig_hang", (*dig, "hang.nettrail.test"))):
        proc = subprocess.Popen(ns.exec_args(*command), stdout=subprocess.PIPE, text=True)
        proc.communicate(timeout=60)
        assert proc.returncode in (0, 9), command  # dig: 9 when no answer came
        pids[who] = proc.pid
    run.interrupt()
    returncode, _, stderr = run.finish()
    return Scenario(run, returncode, stderr, pids,
                    {"late": str(late / MUSL_LOADER), "static": str(static),
                     "chroot": str(chroot / MUSL_LOADER)})


def by_name(records: list[dict]) -> dict[str, dict]:
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)), f"a lookup was logged twice: {names}"
    return {r["name"]: r for r in records}


def in_band(record: dict, band: tuple[int, int]) -> bool:
    return band[0] <= record["latency_ms"] < band[1]


def test_capture_ran_with_wire_dns(scenario: Scenario) -> None:
    assert scenario.returncode == 0, scenario.stderr
    dns = scenario.run.meta()["probes"]["dns"]
    assert dns["status"] == "ok" and dns["wire"] == "on"
    assert scenario.run.meta()["lost_events"]["dns"] == 0


def test_chroot_container_with_its_own_musl(scenario: Scenario) -> None:
    libc = by_name(scenario.lookups("chroot", "libc"))
    long_name = "x" * 255  # kept: 255 bytes of the 300
    assert set(libc) == {"fast.nettrail.test", "missing.nettrail.test", "slow.nettrail.test",
                         "hang.nettrail.test", long_name}
    assert libc["fast.nettrail.test"]["ok"] and in_band(libc["fast.nettrail.test"], FAST_MS)
    assert libc["slow.nettrail.test"]["ok"] and in_band(libc["slow.nettrail.test"], SLOW_MS)
    assert libc["missing.nettrail.test"]["error"] == "EAI_NONAME"
    assert libc["hang.nettrail.test"]["error"] == "EAI_AGAIN"
    assert in_band(libc["hang.nettrail.test"], GIVE_UP_MS)
    assert libc[long_name]["name_truncated"] and not libc[long_name]["ok"]
    assert not any(r["name_truncated"] for n, r in libc.items() if n != long_name)
    assert all(r["comm"] == "lookup" for r in libc.values())
    assert all(r["resolved_by"] == "dns" for n, r in libc.items() if n != long_name)
    probed = {lib["path"]: lib for lib in scenario.run.meta()["probes"]["dns"]["libcs"]}
    assert "getaddrinfo" in probed[scenario.paths["chroot"]]["functions"]


def test_queries_of_a_libc_call_are_linked_to_it(scenario: Scenario) -> None:
    libc = by_name(scenario.lookups("chroot", "libc"))
    wire = scenario.lookups("chroot", "wire")
    for name, call in libc.items():
        queries = [q for q in wire if q["name"] == name]
        if call["name_truncated"]:
            assert not queries  # musl refuses a name that long before asking
            continue
        assert {q["qtype"] for q in queries} == {"A", "AAAA"}, queries
        assert all(q["call_ts"] == call["ts"] for q in queries)
        assert all(call["ts"] <= q["ts"] and q["ts"] + q["latency_ms"] / 1000 <=
                   call["ts"] + call["latency_ms"] / 1000 + 0.001
                   for q in queries if not q["pending"])
    assert {q["error"] for q in wire if q["name"] == "missing.nettrail.test"} == {"NXDOMAIN"}
    # never answered: each send that was followed by another timed out, and
    # so did the last when the call gave up (unanswered, not pending: nobody
    # waits for it at window end), after as long as the call waited
    call = libc["hang.nettrail.test"]
    for qtype in ("A", "AAAA"):
        hang = [q for q in wire if q["name"] == "hang.nettrail.test" and q["qtype"] == qtype]
        assert len(hang) >= 2 and [q["error"] for q in hang] == ["TIMEOUT"] * len(hang)
        assert not any(q["pending"] for q in hang)
        waited_until = hang[-1]["ts"] + hang[-1]["latency_ms"] / 1000
        assert abs(waited_until - (call["ts"] + call["latency_ms"] / 1000)) < 0.05
    answered = [q for q in wire if q["name"] == "fast.nettrail.test" and q["qtype"] == "A"]
    assert answered[0]["addresses"] == ["127.0.0.42"]
    assert answered[0]["server"] == "127.0.0.1:53"


def test_musl_container_started_mid_window(scenario: Scenario) -> None:
    libc = by_name(scenario.lookups("late", "libc"))
    assert set(libc) == {"fast.nettrail.test", "servfail.nettrail.test"}
    assert libc["fast.nettrail.test"]["ok"] and in_band(libc["fast.nettrail.test"], FAST_MS)
    assert not libc["servfail.nettrail.test"]["ok"]
    wire = [q for q in scenario.lookups("late", "wire") if q["name"] == "servfail.nettrail.test"]
    assert {q["error"] for q in wire} == {"SERVFAIL"}


def test_static_glibc_program(scenario: Scenario) -> None:
    libc = by_name(scenario.lookups("static", "libc"))
    assert set(libc) == {"fast.nettrail.test", "missing.nettrail.test"}
    assert libc["fast.nettrail.test"]["ok"] and libc["fast.nettrail.test"]["addresses"] == [
        "127.0.0.42"]
    assert libc["missing.nettrail.test"]["error"] == "EAI_NONAME"
    probed = {lib["path"]: lib for lib in scenario.run.meta()["probes"]["dns"]["libcs"]}
    assert probed[scenario.paths["static"]]["kind"] == "executable"


def test_go_resolver_seen_on_the_wire(scenario: Scenario) -> None:
    records = [r for r in scenario.run.records(DNS) if r["pid"] == scenario.pids["go"]]
    assert {r["source"] for r in records} == {"wire"}
    queries = {(r["name"], r["qtype"]): r for r in records}
    assert len(queries) == len(records) == 4, records
    assert set(queries) == {(n, t) for n in ("fast.nettrail.test", "missing.nettrail.test")
                            for t in ("A", "AAAA")}
    assert queries[("fast.nettrail.test", "A")]["addresses"] == ["127.0.0.42"]
    assert queries[("missing.nettrail.test", "A")]["error"] == "NXDOMAIN"
    assert all(in_band(r, FAST_MS) and r["call_ts"] is None for r in records)


def test_dig_over_udp_and_tcp_and_a_query_never_answered(scenario: Scenario) -> None:
    udp = by_name(scenario.lookups("dig", "wire"))
    assert set(udp) == {"fast.nettrail.test", "servfail.nettrail.test"}
    assert udp["fast.nettrail.test"]["ok"] and udp["fast.nettrail.test"]["qtype"] == "A"
    assert udp["servfail.nettrail.test"]["error"] == "SERVFAIL"
    tcp = by_name(scenario.lookups("dig_tcp", "wire"))
    assert tcp["slow.nettrail.test"]["ok"] and in_band(tcp["slow.nettrail.test"], SLOW_MS)
    hang = by_name(scenario.lookups("dig_hang", "wire"))
    assert hang["hang.nettrail.test"]["pending"] and not hang["hang.nettrail.test"]["ok"]
    # dig asks libc about its server's address: a literal, no lookup
    literal = scenario.lookups("dig", "libc")
    assert literal and all(r["resolved_by"] == "literal" for r in literal)
