"""Libraries are opened safely (issue 13, item 2): an unprivileged user's
chroot with a FIFO or a symlink where its libc's path leads, or 150 fake
libc.so.6 mappings, neither hang the capture nor make it open what the user
names; and the pure parts of the dns probe (ELF symbols, names, DNS
messages), root-free."""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from nettrail.capture.clock import Clock
from nettrail.capture.events import DnsEvent, RecordContext
from nettrail.capture.libcs import MAX_FILES, NotProbeable, function_offsets
from nettrail.capture.loader import HookSet
from nettrail.capture.preflight import kernel_has_uprobe_multi
from nettrail.capture.probes.dns import (MULTI, SINGLE, DnsProbe, dns_records, is_literal,
                                        resolved_by)
from nettrail.capture.probes.dns_wire import cgroup2_root, parse_message
from nettrail.arguments import _probe_list
from nettrail.headline import Headline
from nettrail.format import DEFAULT_PROBES
from helpers import TOOLS, CaptureRun

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's interpreter is not nobody's to run
START_BOUND_S = 30
FD_LIMIT = 1024
FAKES = 150


def system_libc() -> Path:
    out = subprocess.run(["ldd", "/bin/true"], capture_output=True, text=True).stdout
    return Path(next(line.split()[2] for line in out.splitlines() if "libc.so" in line))


@pytest.fixture
def playground() -> Path:
    """A directory nobody (uid 65534) owns, outside root's private tmp."""
    path = Path(subprocess.run(["mktemp", "-d", "/tmp/nettrail-trick.XXXXXX"],
                               capture_output=True, text=True, check=True).stdout.strip())
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def give_to_nobody(path: Path) -> None:
    subprocess.run(["chown", "-R", "65534:65534", str(path)], check=True)


def start_mapper(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen([*NOBODY, SYSTEM_PYTHON, str(TOOLS / "mapper.py"), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready"), line
    return proc


def capture_around(directory: Path, mapper: subprocess.Popen) -> tuple[CaptureRun, float]:
    """A short dns capture while the trick is in place; how long it took to start."""
    began = time.monotonic()
    try:
        run = CaptureRun(directory, "0.2", "2", "--probes", "dns")
        started_s = time.monotonic() - began
        returncode, _, stderr = run.finish(timeout=60)
        assert returncode == 0, stderr
    finally:
        mapper.stdin.close()
        mapper.wait(timeout=30)
    return run, started_s


@pytest.mark.parametrize("trick", ["fifo", "symlink"])
def test_chroot_tricks_do_not_hang_or_redirect(tmp_path: Path, playground: Path, bpf: None,
                                               trick: str) -> None:
    (playground / "lib").mkdir()
    shutil.copy(system_libc(), playground / "lib" / "libc.so.6")
    give_to_nobody(playground)
    # where the symlink points: a FIFO nobody writes to (opening it would hang)
    bait = tmp_path / "bait"
    os.mkfifo(bait)
    mapper = start_mapper(trick, str(playground), str(bait))
    trap = Path(f"/proc/{mapper.pid}/root{playground}/lib/libc.so.6")
    assert trap.is_fifo() if trick == "fifo" else trap.is_symlink()
    run, started_s = capture_around(tmp_path / "capture", mapper)
    assert started_s < START_BOUND_S
    # the library the process really maps was probed, found through the mapping
    probed = {lib["path"]: lib for lib in run.meta()["probes"]["dns"]["libcs"]}
    assert "getaddrinfo" in probed[f"{playground}/lib/libc.so.6"]["functions"]


def test_many_fake_libcs_are_capped_and_listed(tmp_path: Path, playground: Path,
                                              bpf: None) -> None:
    """150 files named libc.so.6 with a getaddrinfo, mapped by one process, at
    ulimit -n 1024: the capture starts soon, probes at most MAX_FILES, lists
    the rest, and root's libc is among those probed."""
    fake = tmp_path / "fake.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(fake), str(TOOLS / "fakelibc.c")],
                   check=True)
    for i in range(FAKES):
        (playground / f"c{i}").mkdir()
        shutil.copy(fake, playground / f"c{i}" / "libc.so.6")
    give_to_nobody(playground)
    mapper = start_mapper("many", str(playground))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, hard))  # the capture inherits it
    try:
        run, started_s = capture_around(tmp_path / "capture", mapper)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert started_s < START_BOUND_S
    dns = run.meta()["probes"]["dns"]
    paths = {lib["path"] for lib in dns["libcs"]}
    assert len(paths) <= MAX_FILES
    assert str(system_libc().resolve()) in paths
    fakes = [p for p in paths if p.startswith(str(playground))]
    capped = [n for n in dns["not_probed"] if "limit" in n["reason"]]
    # every fake is probed, listed or counted (other processes' files may be too)
    assert capped and len(fakes) + len(capped) + dns["not_probed_unlisted"] >= FAKES
    print(f"started in {started_s:.2f} s with {FAKES} fake libcs")


# -- root-free: the pure parts -------------------------------------------------

def test_elf_offsets_match_the_dynamic_symbols() -> None:
    libc = system_libc()
    out = subprocess.run(["nm", "-D", "--defined-only", str(libc)], capture_output=True,
                         text=True, check=True).stdout
    symbols = {f[2].split("@")[0]: int(f[0], 16) for f in map(str.split, out.splitlines())
               if len(f) == 3 and f[1] in "TW"}
    fd = os.open(libc, os.O_RDONLY)
    try:
        offsets = function_offsets(fd)
    finally:
        os.close(fd)
    # libc's text is mapped at its file offset: symbol value == file offset
    assert offsets == {name: symbols[name] for name in offsets}
    assert "getaddrinfo" in offsets


def test_non_elf_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "libc.so.6"
    junk.write_bytes(b"#!/bin/sh\n" + b"\0" * 100)
    fd = os.open(junk, os.O_RDONLY)
    try:
        with pytest.raises(NotProbeable):
            function_offsets(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("name, literal", [("10.77.0.2", True), ("10.1", True), ("::1", True),
                                           ("fe80::1%eth0", True), ("example.com", False),
                                           ("localhost", False), ("10.77.0.2.example", False),
                                           ("0x7f.1", True), ("127", True), ("a::b", True),
                                           ("1password.com", False), ("host:80", False),
                                           (" 10.0.0.1", False), ("+1.2.3.4", False), ("", False)])
def test_ip_literals(name: str, literal: bool) -> None:
    assert is_literal(name) is literal


def test_resolved_by() -> None:
    assert resolved_by("10.0.0.1", True, 0, wire_on=True) == "literal"
    assert resolved_by("localhost", True, 0, wire_on=False) == "hosts"
    assert resolved_by("db.example", True, 2, wire_on=True) == "dns"
    assert resolved_by("db.example", True, 0, wire_on=True) == "hosts"
    assert resolved_by("db.example", True, 0, wire_on=False) is None


def sent_event(host: bytes, pid: int, address: bytes = b"") -> bytes:
    """A dns_event as the BPF program sends it: cut after its name's NUL."""
    e = DnsEvent(start_ns=1_000_000, end_ns=3_500_000, pid=pid, function=1, host=host,
                 host_len=len(host) + 1, naddrs=1 if address else 0)
    if address:
        e.families[0] = socket.AF_INET
        ctypes.memmove(e.addrs[0], address, 4)
    return bytes(e)[:DnsEvent.host.offset + e.host_len]


def test_events_as_long_as_their_names_are_decoded_in_turn() -> None:
    names = [b"", b"a", b"db.example", b"x" * 255, "caf\u00e9.example".encode()]
    blob = b"".join(sent_event(name, pid=100 + i, address=socket.inet_aton("192.0.2.9"))
                    for i, name in enumerate(names))
    assert len(blob) == sum(DnsEvent.host.offset + len(name) + 1 for name in names)
    records = dns_records(blob, RecordContext(Clock(), "test"), False, lambda pid: None)
    assert [(r["pid"], r["name"], r["latency_ms"], r["addresses"]) for r in records] == [
        (100 + i, name.decode(), 2.5, ["192.0.2.9"]) for i, name in enumerate(names)]


def dns_message(name: bytes, flags: int = 0x0100, answers: bytes = b"", ancount: int = 0,
                qtype: int = 1) -> bytes:
    qname = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"
    return (struct.pack("!HHHHHH", 0x1234, flags, 1, ancount, 0, 0) + qname +
            struct.pack("!HH", qtype, 1) + answers)


def test_dns_answer_parsed() -> None:
    a = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("192.0.2.7")
    aaaa = b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 60, 16) + socket.inet_pton(
        socket.AF_INET6, "2001:db8::7")
    msg = parse_message(dns_message(b"api.example", 0x8180, a + aaaa + a, 3))
    assert (msg.name, msg.truncated, msg.qtype, msg.rcode) == ("api.example", False, "A", 0)
    assert msg.addresses == ["192.0.2.7", "2001:db8::7"]
    assert parse_message(dns_message(b"x.example", 0x8183)).rcode == 3
    assert parse_message(dns_message(b"x.example", qtype=65)).qtype == "HTTPS"


def test_hostile_dns_bytes_do_not_break_parsing() -> None:
    cut = dns_message(b"a" * 60 + b".example")[:40]
    msg = parse_message(cut)
    assert msg.truncated and msg.name == ""
    weird = parse_message(dns_message(b"\xff\xfe\n.example"))
    assert weird.name == "\ufffd\ufffd\n.example"
    # a record claiming more data than there is, and a pointer loop
    broken = dns_message(b"x.example", 0x8180, b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 200),
                         5)
    assert parse_message(broken).addresses == []
    assert parse_message(b"\x00" * 5).truncated


def test_cgroup2_root_from_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                    "35 30 0:31 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 "
                    "cgroup2 rw\n")
    assert cgroup2_root(str(info)) == "/sys/fs/cgroup/unified"


def test_probes_option_wire() -> None:
    assert _probe_list("+wire") == (*DEFAULT_PROBES, "wire")
    assert _probe_list("wire") == ("wire", "dns")
    assert _probe_list("dns,wire") == ("dns", "wire")


def started_dns_probe(hook_sets: tuple[HookSet, ...]) -> DnsProbe:
    probe = DnsProbe(RecordContext(Clock(), "test"), (os.getpid(),))
    probe.hook_sets = hook_sets
    probe.start({})
    return probe


@pytest.mark.parametrize("hooks", DnsProbe.hook_sets, ids=[h.name.split("/")[0]
                                                         for h in DnsProbe.hook_sets])
def test_each_uprobe_hook_set_attaches(bpf: None, hooks: HookSet) -> None:
    """uprobe_multi where the kernel's BTF has it (6.6+), and one uprobe per
    function, which kernels before 6.6 get, everywhere."""
    probe = started_dns_probe((hooks,))
    try:
        if hooks is MULTI and not kernel_has_uprobe_multi():
            assert probe.status.status == "failed"
            assert "attach failed: uprobe_multi in " in probe.status.error
            return
        assert probe.status.status == "ok", probe.status.error
        assert probe.status.hook == hooks.name
        assert any("getaddrinfo" in lib.functions for lib in probe.libraries)
    finally:
        probe.close()


def test_dns_probe_takes_the_hook_this_kernel_has(bpf: None) -> None:
    probe = started_dns_probe(DnsProbe.hook_sets)
    try:
        assert probe.status.hook == (MULTI if kernel_has_uprobe_multi() else SINGLE).name
    finally:
        probe.close()


def test_headline_counts_a_libc_call_and_its_queries_once() -> None:
    call = {"ts": 10.0, "name": "db.example", "ok": True, "pending": False,
            "latency_ms": 5.0, "resolved_by": "dns", "call_ts": None}
    queries = [{**call, "ts": 10.001, "latency_ms": 2.0, "call_ts": 10.0},
               {**call, "ts": 10.002, "latency_ms": 3.0, "call_ts": 10.0}]
    wire_only = {**call, "name": "go.example", "latency_ms": 1.0}
    headline = Headline()
    headline.add("dns", [*queries, call, wire_only])
    assert (headline.lookups, headline.slowest_name) == (2, "db.example")
