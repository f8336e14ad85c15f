"""Shared fixtures: BPF readiness (fails in CI, skips elsewhere), a DNS server
in its own network namespace, and running `nettrail capture` as a process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import nettrail
from helpers import ROOT, TOOLS, NetNs, require_bpf

if os.environ.get("CI") == "true" and Path(nettrail.__file__).resolve().parent == ROOT / "nettrail":
    raise pytest.UsageError(f"the tests import nettrail from {nettrail.__file__}: CI tests the "
                            "installed wheel (make test), not the source tree")


KERNEL_FIXTURES = {"bpf", "dns_netns"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that load probes are the kernel's: `-m kernel` runs them in the
    VM kernel matrix (make test-kernels)."""
    for item in items:
        if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True, scope="session")
def sigint_reaches_children() -> None:
    """A suite started as a background job (`make test &`, some CI runners)
    inherits SIGINT ignored, and so would every process a test starts: a
    Python child then never raises KeyboardInterrupt, and a test that sends
    Ctrl-C waits in vain. A handler here is reset to the default at exec."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def private_run_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The host lock and pid file of this test run only: another run (or a
    real capture) on the same host does not make a test busy."""
    os.environ["NETTRAIL_RUN_DIR"] = str(tmp_path_factory.mktemp("run"))


@pytest.fixture
def bpf() -> None:
    require_bpf()


@pytest.fixture(scope="session")
def dns_netns() -> NetNs:
    """A network namespace whose resolver is tests/tools/dnsserver.py."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        if os.environ.get("CI") == "true":
            pytest.fail("the DNS tests need root and iproute2")
        pytest.skip("the DNS tests need root and iproute2")
    ns = NetNs(f"nt-test-{os.getpid()}")
    ns.create(resolv="nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    server = subprocess.Popen(ns.exec_args(sys.executable, str(TOOLS / "dnsserver.py")),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        yield ns
    finally:
        server.kill()
        server.wait()
        ns.delete()


@pytest.fixture
def capture_dir(tmp_path: Path) -> Path:
    return tmp_path / "capture"
