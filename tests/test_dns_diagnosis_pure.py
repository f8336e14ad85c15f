"""DNS diagnosis without BPF: wire names escaped per label, answers only for
the question and its CNAME chain, resolv.conf parsed as glibc does and read
through a process's root without leaving it, log text sanitised."""

from __future__ import annotations

import os
import signal
import socket
import struct
from pathlib import Path

import pytest

from nettrail.capture.probes.dns_wire import parse_message
from nettrail.capture.resolvconf import MAX_BYTES, ResolvConfs, parse, read_resolv_conf
from nettrail.units import printable_record


def wire_name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def message(question: bytes, answers: list[bytes], flags: int = 0x8180) -> bytes:
    return (struct.pack("!HHHHHH", 7, flags, 1, len(answers), 0, 0) + question +
            struct.pack("!HH", 1, 1) + b"".join(answers))


def a_record(owner: bytes, addr: str) -> bytes:
    return owner + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)


def cname(owner: bytes, target: bytes) -> bytes:
    return owner + struct.pack("!HHIH", 5, 1, 60, len(target)) + target


QUESTION = wire_name(b"api", b"example")
AT_QUESTION = b"\xc0\x0c"  # a compression pointer to the question's name


def test_labels_escaped_so_their_boundaries_stay_visible() -> None:
    msg = parse_message(message(wire_name(b"www.bank.com", b"evil", b"test"), []))
    assert msg.name == "www\\.bank\\.com.evil.test"
    assert parse_message(message(wire_name(b"a\\b", b"test"), [])).name == "a\\\\b.test"
    # the same text as three real labels is another name
    assert parse_message(message(wire_name(b"www", b"bank", b"com"), [])).name == "www.bank.com"


def test_answers_for_another_name_are_not_the_answer() -> None:
    msg = parse_message(message(QUESTION, [a_record(wire_name(b"<img src=x>"), "10.6.6.6"),
                                           a_record(AT_QUESTION, "192.0.2.1")]))
    assert msg.addresses == ["192.0.2.1"]
    # case does not matter to DNS
    upper = parse_message(message(QUESTION, [a_record(wire_name(b"API", b"Example"),
                                                      "192.0.2.2")]))
    assert upper.addresses == ["192.0.2.2"]


def test_the_cname_chain_is_followed() -> None:
    target, further = wire_name(b"edge", b"cdn", b"test"), wire_name(b"last", b"test")
    msg = parse_message(message(QUESTION, [
        cname(AT_QUESTION, target), cname(target, further), a_record(further, "192.0.2.9"),
        a_record(wire_name(b"elsewhere", b"test"), "10.6.6.6")]))
    assert msg.addresses == ["192.0.2.9"]


def test_a_pointer_loop_in_an_owner_name_ends() -> None:
    looped = message(QUESTION, [b"\xc0\x1d" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\1\2\3\4"])
    assert parse_message(looped).addresses == []


def test_resolv_conf_parsed_as_glibc_does() -> None:
    config = parse(b"# pod\nnameserver 10.96.0.10\nnameserver bogus\nnameserver fe80::1%eth0\n"
                   b"domain old.example\nsearch ns.svc.cluster.local svc.cluster.local "
                   b"cluster.local\noptions ndots:5 timeout:99 attempts:1 rotate frobnicate\n"
                   b"nameserver 10.0.0.3\nnameserver 10.0.0.4\n")
    assert config.nameservers == ["10.96.0.10", "fe80::1", "10.0.0.3"]
    assert config.search == ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert (config.ndots, config.timeout_s, config.attempts) == (5, 30, 1)
    assert config.options == ["rotate"]
    empty = parse(b"")
    assert (empty.nameservers, empty.ndots, empty.timeout_s, empty.attempts) == (
        ["127.0.0.1"], 1, 5, 2)
    assert parse(b"search a.example\ndomain b.example\n").search == ["b.example"]


def test_log_text_goes_through_the_one_sanitiser() -> None:
    record = printable_record({"name": "\u202eevil", "addresses": ["a\x1b[2J"], "n": 3,
                               "nested": {"k\n": [None, "\u2066x"]}})
    assert record == {"name": "\\u202eevil", "addresses": ["a\\x1b[2J"], "n": 3,
                      "nested": {"k\\x0a": [None, "\\u2066x"]}}


@pytest.fixture
def chrooted(tmp_path: Path):
    """A child process chrooted into tmp_path/root (root only)."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: chroot, say so, wait to be killed
        try:
            os.chroot(root)
            os.write(write_end, b"x")
            signal.pause()
        finally:
            os._exit(0)
    os.close(write_end)
    assert os.read(read_end, 1) == b"x"
    os.close(read_end)
    yield pid, root
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_resolv_conf_read_inside_the_process_root(chrooted, tmp_path: Path) -> None:
    pid, root = chrooted
    outside = tmp_path / "outside.conf"
    outside.write_text("nameserver 10.9.9.9\n")
    conf = root / "etc" / "resolv.conf"
    # an absolute symlink resolves inside the process's root, never into ours
    conf.symlink_to(outside)
    assert read_resolv_conf(pid) is None
    (root / "inside.conf").write_text("nameserver 10.1.1.1\n")
    conf.unlink()
    conf.symlink_to("/inside.conf")
    identity, data, truncated = read_resolv_conf(pid)
    assert parse(data).nameservers == ["10.1.1.1"] and not truncated
    # only what its process could read itself; no FIFO is opened; bounded
    (root / "inside.conf").chmod(0o600)
    os.chown(root / "inside.conf", 1234, 1234)
    assert read_resolv_conf(pid) is None
    conf.unlink()
    os.mkfifo(conf)
    assert read_resolv_conf(pid) is None
    conf.unlink()
    conf.write_bytes(b"#" * (MAX_BYTES + 10))
    assert read_resolv_conf(pid)[1:] == (b"#" * MAX_BYTES, True)


def test_one_config_per_distinct_file(chrooted) -> None:
    pid, root = chrooted
    (root / "etc" / "resolv.conf").write_text("nameserver 10.1.1.1\nsearch a.example\n")
    confs = ResolvConfs()
    assert confs.of_pid(pid) == 1
    (root / "etc" / "resolv.conf").write_text("nameserver 10.2.2.2\n")
    assert confs.of_pid(pid) == 1  # a pid's is read once (again after an exec)
    confs.forget(pid)
    assert confs.of_pid(pid) == 2
    assert [c["nameservers"] for c in confs.as_json()] == [["10.1.1.1"], ["10.2.2.2"]]
    assert confs.as_json()[0]["search"] == ["a.example"]
    assert confs.of_pid(2 ** 22 + 7) is None  # no such process
