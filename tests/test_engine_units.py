"""Capture engine v2, root-free: identity from cgroup paths and /proc, the
kernel-feature choice made from BTF (kernels this machine cannot boot), and
the kernel ABI mirrors."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

from nettrail.capture.identity import (Identities, Named, cgroup2_mount, names_in_cgroup,
                                       process_facts)
from nettrail.capture.libbpf import ProgInfo
from nettrail.capture.check import tcp_findings
from nettrail.capture.events import CONN_CHRONO, CONN_RTO
from nettrail.capture.probes.bandwidth import TcpStats
from nettrail.capture.probes.sessions import session_rtt_us
from nettrail.capture.names import ContainerNames, Layouts
from nettrail.capture.preflight import TCP_NEEDS, missing_tcp_needs, tcp_needs_problem

ID = "0123456789abcdef" * 4


POD_UID = "1a2b3c4d-0000-1111-2222-333344445555"


@pytest.mark.parametrize("path, named", [
    (f"/system.slice/docker-{ID}.scope", Named(ID, f"docker-{ID}.scope")),
    (f"/system.slice/cri-containerd-{ID}.scope", Named(ID, f"cri-containerd-{ID}.scope")),
    (f"/machine.slice/libpod-{ID}.scope", Named(ID, f"libpod-{ID}.scope")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_0000_1111_2222"
     f"_333344445555.slice/crio-{ID}.scope", Named(ID, f"crio-{ID}.scope", POD_UID)),
    ("/kubepods.slice/kubepods-pod1a2b3c4d_0000_1111_2222_333344445555.slice",
     Named(POD_UID, None, POD_UID)),
    (f"/kubepods/besteffort/pod{POD_UID}/{ID}", Named(ID, None, POD_UID)),
    (f"/other/pod{POD_UID}/{ID}", Named(ID, None)),  # a pod directory only below kubepods
    (f"/docker/{ID}", Named(ID, None)),
    ("/system.slice/nginx.service", Named(None, "nginx.service")),
    ("/user.slice/user-0.slice/session-4.scope", Named(None, "session-4.scope")),
    ("/system.slice/docker-notanid.scope", Named(None, "docker-notanid.scope")),
    ("/", Named(None, None)),
    (None, Named(None, None)),
])
def test_names_in_cgroup(path: str | None, named: Named) -> None:
    assert names_in_cgroup(path) == named


def test_cgroup2_mount_found_on_hybrid_and_unified_hosts(tmp_path: Path) -> None:
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n")
    unified = tmp_path / "unified"
    unified.write_text("35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
                       "36 24 0:31 /sub /mnt/with\\040space rw - cgroup2 cgroup2 rw\n")
    assert cgroup2_mount(hybrid) == "/sys/fs/cgroup/unified"
    assert cgroup2_mount(unified) == "/sys/fs/cgroup"
    assert cgroup2_mount(tmp_path / "missing") is None


def fake_proc(root: Path, pid: int, comm: str, nspids: str, cgroup: str) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "comm").write_text(comm + "\n")
    (d / "status").write_text(f"Name:\t{comm}\nTgid:\t{pid}\nNSpid:\t{nspids}\n")
    (d / "cgroup").write_text(f"0::{cgroup}\n")


def test_identity_from_proc_once_per_process(tmp_path: Path) -> None:
    fake_proc(tmp_path, 7308, "nginx", "7308\t3", f"/system.slice/docker-{ID}.scope")
    ids = Identities("web-3", proc=tmp_path,
                     names=ContainerNames(Layouts.under(tmp_path / "node")))  # none there
    first = ids.identity(7308, "nginx")
    assert first == {"host": "web-3", "pid": 7308, "comm": "nginx", "nspid": 3,
                     "cgroup": f"/system.slice/docker-{ID}.scope", "container": ID,
                     "unit": f"docker-{ID}.scope", "container_name": None, "pod": None,
                     "pod_namespace": None, "pod_uid": None}
    (tmp_path / "7308" / "status").unlink()  # read once: the cache answers now
    assert ids.identity(7308, "nginx") == first


def test_identity_names_the_leader_and_survives_exit(tmp_path: Path) -> None:
    fake_proc(tmp_path, 42, "server", "42", "/system.slice/app.service")
    ids = Identities("h", proc=tmp_path)
    # a worker thread's name as comm: the leader's name is what is written
    assert ids.identity(42, "pool-io-1")["comm"] == "server"
    # a process gone from /proc: BPF's name and namespace pid still count
    gone = ids.identity(99, "short", nspid=5)
    assert (gone["comm"], gone["nspid"], gone["cgroup"]) == ("short", 5, None)
    assert ids.identity(None, "")["pid"] is None


def test_identity_cache_is_bounded(tmp_path: Path) -> None:
    ids = Identities("h", proc=tmp_path, limit=8)
    for pid in range(1, 100):
        ids.identity(pid, "x")
    assert len(ids._facts) == 8


def test_process_facts_of_a_missing_process(tmp_path: Path) -> None:
    facts = process_facts(12345, tmp_path)
    assert (facts.comm, facts.nspid, facts.cgroup) == (None, None, None)


def kernel_with(*absent: str):
    return lambda need: need.name not in absent


def test_kernels_from_5_11_have_everything() -> None:
    """5.15 (Ubuntu 22.04), RHEL 9's 5.14, 6.1, 6.12: all needs are in BTF."""
    assert missing_tcp_needs(kernel_with()) == []
    assert tcp_needs_problem([]) is None


def test_a_5_10_kernel_is_refused_with_what_it_lacks() -> None:
    missing = missing_tcp_needs(kernel_with("BPF_FUNC_sock_from_file",
                                            "BPF_FUNC_get_current_task_btf"))
    assert [n.what for n in missing] == ["bpf_sock_from_file", "bpf_get_current_task_btf"]
    problem = tcp_needs_problem(missing)
    assert "bpf_sock_from_file (5.11+)" in problem.problem
    assert "5.11" in problem.fix


def test_a_kernel_before_6_7_runs_without_rto_counts_and_check_says_so() -> None:
    assert missing_tcp_needs(kernel_with("tcp_sock.total_rto")) == []
    (rto,) = [f for f in tcp_findings(kernel_with("tcp_sock.total_rto"))
              if f.what == "tcp_sock.total_rto"]
    assert rto.ok and "missing (optional)" in rto.value and "6.7" in rto.fix


def test_an_accepted_sockets_rtt_is_dropped_where_its_handshake_waited() -> None:
    client, server = 1, 2
    # a resent SYN-ACK, or an ACK well after the path's RTT: the wait, not the path
    assert session_rtt_us(server, 156_000, True, 1_003_000, 1, 60) is None
    assert session_rtt_us(server, 156_000, True, 205_000, 0, 60) is None
    # a fast handshake read off a 1 ms timestamp tick is the path
    assert session_rtt_us(server, 80, True, 1000, 0, 60) == 80
    # a client's handshake is timed from its connect: its RTT is its own
    assert session_rtt_us(client, 156_000, True, 1_003_000, 1, 60) == 156_000
    # opened before the window: nothing known of its handshake
    assert session_rtt_us(server, 90, False, 0, 0, 60) == 90


def test_tcp_stats_of_one_interval_add_up_and_unknowns_are_null() -> None:
    early = TcpStats(CONN_CHRONO | CONN_RTO, 10, 4, 1, 500, 2, 1, 0, 40)
    late = TcpStats(CONN_RTO, 0, 0, 0, 700, 3, 0, 1, 60)  # taken before the tick rate was known
    both = early.then(late)
    assert both == TcpStats(CONN_RTO, 10, 4, 1, 700, 5, 1, 1, 100)
    assert both.fields() == {"busy_us": None, "rwnd_limited_us": None,
                             "sndbuf_limited_us": None, "retrans_segs": 5, "lost_segs": 1,
                             "rto_timeouts": 1, "delivery_bytes_per_s": 700, "sent_segs": 100}
    assert early.fields()["rwnd_limited_us"] == 4
    assert TcpStats(CONN_CHRONO, 0, 0, 0, 0, 0, 0, 0).fields()["rto_timeouts"] is None


def test_needs_are_named_by_btf_only() -> None:
    assert {n.kind for n in TCP_NEEDS} <= {"struct", "typedef", "helper", "member"}


def test_prog_info_mirror_matches_the_uapi_header(tmp_path: Path) -> None:
    source = tmp_path / "info.c"
    source.write_text('#include <stdio.h>\n#include <stddef.h>\n#include <linux/bpf.h>\n'
                      'int main(void) { printf("%zu %zu %zu", '
                      'offsetof(struct bpf_prog_info, run_time_ns), '
                      'offsetof(struct bpf_prog_info, run_cnt), '
                      'offsetof(struct bpf_prog_info, recursion_misses)); return 0; }\n')
    subprocess.run(["cc", str(source), "-o", str(tmp_path / "info")], check=True)
    offsets = subprocess.run([str(tmp_path / "info")], capture_output=True, text=True,
                             check=True).stdout.split()
    assert [int(o) for o in offsets] == [ProgInfo.run_time_ns.offset, ProgInfo.run_cnt.offset,
                                         ProgInfo.recursion_misses.offset]
    assert ctypes.sizeof(ProgInfo) == ProgInfo.recursion_misses.offset + 8
