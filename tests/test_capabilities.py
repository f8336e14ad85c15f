"""The capabilities README lists per probe, measured: nettrail as uid 65534
holding exactly them sees root's traffic; without a required one the probe
says, in one line, which capability it needs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import TOOLS, CaptureRun, NetNs
from nettrail.capture.preflight import kernel_has_uprobe_multi
from nettrail.capture.probes.dns import DnsProbe
from nettrail.format import DNS, SESSIONS

TCP_CAPS = ("bpf", "perfmon", "dac_read_search")
DNS_CAPS = ("bpf", "perfmon", "checkpoint_restore", "sys_ptrace", "dac_read_search")
PAYLOAD = 23_456
# Windows with a workload are long and ended by SIGINT once it is done: the
# workload is inside the window however slow the machine (a VM under TCG).
LONG_WINDOW = ("0.5", "240")
MAP_FILES_ERROR = ("CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (open the files processes map, "
                   "through /proc/PID/map_files)")
SINGLE_UPROBE_ERROR = ("CAP_SYS_ADMIN (uprobes through perf_event_open: this kernel has no "
                       "uprobe_multi links (6.6+))")


def dns_caps() -> tuple[str, ...]:
    """What the dns probe needs on this kernel: without uprobe_multi (before
    6.6) perf_event_open's uprobes want CAP_SYS_ADMIN as well."""
    return DNS_CAPS if kernel_has_uprobe_multi() else DNS_CAPS + ("sys_admin",)


def as_nobody(caps: tuple[str, ...]) -> tuple[str, ...]:
    held = ",".join(f"+{cap}" for cap in caps)
    return ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            f"--inh-caps={held}", f"--ambient-caps={held}")


@pytest.fixture
def nobody_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A place uid 65534 can create its capture and run directory in (pytest's
    own directories are root's: only CAP_DAC_READ_SEARCH would get through)."""
    directory = Path(tempfile.mkdtemp(prefix="nettrail-caps-"))
    directory.chmod(0o777)
    monkeypatch.setenv("NETTRAIL_RUN_DIR", str(directory / "run"))
    yield directory
    shutil.rmtree(directory)


def ended_now(run: CaptureRun) -> int:
    """The workload is done: end the long window, its exit status."""
    run.interrupt()
    return run.finish()[0]


def probe_status(run: CaptureRun, probe: str) -> dict:
    return run.meta()["probes"][probe]


def short_lived_session(run: CaptureRun) -> int:
    """A root process that makes one loopback session and is gone (exited and
    reaped) before nettrail, stopped meanwhile, reads the session's events:
    its /proc is gone when nettrail names it, however slow the machine. The
    server's port."""
    code = f"from helpers import loopback_session; print(loopback_session({PAYLOAD}))"
    run.proc.send_signal(signal.SIGSTOP)
    try:
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=Path(__file__).parent, check=True, timeout=60)
    finally:
        run.proc.send_signal(signal.SIGCONT)
    return int(child.stdout)


def sessions_of(run: CaptureRun, port: int) -> list[dict]:
    return [r for r in run.records(SESSIONS) if port in (r["lport"], r["rport"])]


def test_tcp_probes_with_their_capabilities(nobody_dir: Path, bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", *LONG_WINDOW, "--probes", "bandwidth,sessions",
                     prefix=as_nobody(TCP_CAPS))
    port = short_lived_session(run)  # root's sockets: another user's
    assert ended_now(run) == 0
    assert [probe_status(run, p)["status"] for p in ("bandwidth", "sessions")] == ["ok", "ok"]
    assert "degraded" not in probe_status(run, "sessions")
    ours = sessions_of(run, port)
    assert sorted((r["side"], r["tx_bytes"], r["rx_bytes"]) for r in ours) == [
        ("client", PAYLOAD, 0), ("server", 0, PAYLOAD)]
    assert all(r["cgroup"] is not None for r in ours)


def test_drops_and_netstat_with_their_capabilities(nobody_dir: Path, bpf: None) -> None:
    """drops: CAP_BPF and CAP_PERFMON; netstat none (procfs: the namespaces of
    the processes it may look at, its own user's without CAP_SYS_PTRACE)."""
    run = CaptureRun(nobody_dir / "capture", "0.5", "1", "--probes", "drops,netstat",
                     prefix=as_nobody(("bpf", "perfmon")))
    assert run.finish()[0] == 0
    assert [probe_status(run, p)["status"] for p in ("drops", "netstat")] == ["ok", "ok"]


def test_tcp_probes_without_dac_read_search_lose_gone_processes_cgroups(
        nobody_dir: Path, bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", *LONG_WINDOW, "--probes", "sessions",
                     prefix=as_nobody(("bpf", "perfmon")))
    port = short_lived_session(run)
    assert ended_now(run) == 0
    status = probe_status(run, "sessions")
    assert status["status"] == "ok"
    assert status["degraded"] == ["without CAP_DAC_READ_SEARCH (the cgroup, hence container "
                                  "and service, of processes gone before their /proc is "
                                  "read)"]
    ours = sessions_of(run, port)
    assert len(ours) == 2 and all(r["cgroup"] is None for r in ours)


def test_dns_with_its_capabilities(nobody_dir: Path, dns_netns: NetNs, bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", *LONG_WINDOW, "--probes", "dns",
                     prefix=as_nobody(dns_caps()))
    looker = dns_netns.spawn(sys.executable, str(TOOLS / "lookup.py"),
                             "getaddrinfo:fast.nettrail.test")
    assert looker.stdout.readline().startswith("getaddrinfo fast.nettrail.test [")
    looker.wait(timeout=30)
    assert ended_now(run) == 0
    assert probe_status(run, "dns")["status"] == "ok"
    assert [(r["name"], r["ok"]) for r in run.records(DNS) if r["pid"] == looker.pid] == [
        ("fast.nettrail.test", True)]


def test_dns_without_map_files_access_says_which_capability(nobody_dir: Path,
                                                            bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", "0.5", "1", "--probes", "dns,sessions",
                     prefix=as_nobody(("bpf", "perfmon", "sys_ptrace", "dac_read_search")))
    assert run.finish()[0] == 0
    status = probe_status(run, "dns")
    assert status["status"] == "failed"
    needs = [MAP_FILES_ERROR] + ([] if kernel_has_uprobe_multi() else [SINGLE_UPROBE_ERROR])
    assert status["error"] == "needs " + ", ".join(needs)
    assert probe_status(run, "sessions")["status"] == "ok"


def test_dns_without_uprobe_multi_needs_sys_admin(nobody_dir: Path, bpf: None) -> None:
    """The kernel's BTF says which hook the dns probe gets: with uprobe_multi
    the listed capabilities suffice, without it the probe names CAP_SYS_ADMIN."""
    run = CaptureRun(nobody_dir / "capture", "0.5", "1", "--probes", "dns,sessions",
                     prefix=as_nobody(DNS_CAPS))
    assert run.finish()[0] == 0
    status = probe_status(run, "dns")
    if kernel_has_uprobe_multi():
        assert (status["status"], status["hook"]) == ("ok", DnsProbe.hook_sets[0].name)
    else:
        assert (status["status"], status["error"]) == ("failed", f"needs {SINGLE_UPROBE_ERROR}")
    assert probe_status(run, "sessions")["status"] == "ok"


@pytest.mark.parametrize("net_admin", [True, False], ids=["net_admin", "without"])
def test_wire_dns_needs_net_admin(nobody_dir: Path, bpf: None, net_admin: bool) -> None:
    if not net_admin and not kernel_has_uprobe_multi():
        pytest.skip("this kernel's uprobes need CAP_SYS_ADMIN, which stands in for CAP_NET_ADMIN")
    caps = dns_caps() + (("net_admin",) if net_admin else ())
    run = CaptureRun(nobody_dir / "capture", "0.5", "1", "--probes", "dns,wire",
                     prefix=as_nobody(caps))
    assert run.finish()[0] == 0
    status = probe_status(run, "dns")
    assert (status["status"], status["wire"]) == ("ok", "on" if net_admin else "off")
    if not net_admin:
        assert status["wire_error"] == ("wire-level DNS needs CAP_NET_ADMIN or CAP_SYS_ADMIN "
                                        "(attach socket programs to the cgroup v2 root)")
