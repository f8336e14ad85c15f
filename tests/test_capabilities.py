"""The capabilities README lists per probe, measured: nettrail as uid 65534
holding exactly them sees root's traffic; without a required one the probe
says, in one line, which capability it needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import TOOLS, CaptureRun, NetNs
from nettrail.logformat import DNS, SESSIONS

TCP_CAPS = ("bpf", "perfmon", "dac_read_search")
DNS_CAPS = ("bpf", "perfmon", "checkpoint_restore", "sys_ptrace", "dac_read_search")
PAYLOAD = 23_456


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


def probe_status(run: CaptureRun, probe: str) -> dict:
    return run.meta()["probes"][probe]


def short_lived_session() -> int:
    """A root process that makes one loopback session and exits at once (its
    /proc is gone when nettrail names it): the server's port."""
    code = f"from helpers import loopback_session; print(loopback_session({PAYLOAD}))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=Path(__file__).parent, check=True, timeout=60)
    return int(child.stdout)


def sessions_of(run: CaptureRun, port: int) -> list[dict]:
    return [r for r in run.records(SESSIONS) if port in (r["lport"], r["rport"])]


def test_tcp_probes_with_their_capabilities(nobody_dir: Path, bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", "0.5", "2", "--probes", "bandwidth,sessions",
                     prefix=as_nobody(TCP_CAPS))
    port = short_lived_session()  # root's sockets: another user's
    assert run.finish()[0] == 0
    assert [probe_status(run, p)["status"] for p in ("bandwidth", "sessions")] == ["ok", "ok"]
    assert "degraded" not in probe_status(run, "sessions")
    ours = sessions_of(run, port)
    assert sorted((r["side"], r["tx_bytes"], r["rx_bytes"]) for r in ours) == [
        ("client", PAYLOAD, 0), ("server", 0, PAYLOAD)]
    assert all(r["cgroup"] is not None for r in ours)


def test_tcp_probes_without_dac_read_search_lose_gone_processes_cgroups(
        nobody_dir: Path, bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", "0.5", "2", "--probes", "sessions",
                     prefix=as_nobody(("bpf", "perfmon")))
    port = short_lived_session()
    assert run.finish()[0] == 0
    status = probe_status(run, "sessions")
    assert status["status"] == "ok"
    assert status["degraded"] == ["without CAP_DAC_READ_SEARCH (the cgroup, hence container "
                                  "and service, of processes gone before their /proc is "
                                  "read)"]
    ours = sessions_of(run, port)
    assert len(ours) == 2 and all(r["cgroup"] is None for r in ours)


def test_dns_with_its_capabilities(nobody_dir: Path, dns_netns: NetNs, bpf: None) -> None:
    run = CaptureRun(nobody_dir / "capture", "0.5", "2", "--probes", "dns",
                     prefix=as_nobody(DNS_CAPS))
    looker = dns_netns.spawn(sys.executable, str(TOOLS / "lookup.py"),
                             "getaddrinfo:fast.nettrail.test")
    assert looker.stdout.readline().startswith("getaddrinfo fast.nettrail.test [")
    looker.wait(timeout=30)
    assert run.finish()[0] == 0
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
    assert status["error"] == ("needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (open the files "
                               "processes map, through /proc/PID/map_files)")
    assert probe_status(run, "sessions")["status"] == "ok"


@pytest.mark.parametrize("net_admin", [True, False], ids=["net_admin", "without"])
def test_wire_dns_needs_net_admin(nobody_dir: Path, bpf: None, net_admin: bool) -> None:
    caps = DNS_CAPS + (("net_admin",) if net_admin else ())
    run = CaptureRun(nobody_dir / "capture", "0.5", "1", "--probes", "dns,wire",
                     prefix=as_nobody(caps))
    assert run.finish()[0] == 0
    status = probe_status(run, "dns")
    assert (status["status"], status["wire"]) == ("ok", "on" if net_admin else "off")
    if not net_admin:
        assert status["wire_error"] == ("wire-level DNS needs CAP_NET_ADMIN or CAP_SYS_ADMIN "
                                        "(attach socket programs to the cgroup v2 root)")
