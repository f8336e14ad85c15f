"""contrib/ansible/fleet-capture.yml against two local targets: two inventory
hosts on this machine (ansible_connection=local), each capturing into its own
directory at the same time, under its own hostname (a UTS namespace) and
filtered to its own process: web-3 runs a client, db-1 a server, in two
network namespaces joined by a veth pair. Both captures must see the one
connection of known size, be fetched, be rendered into a report each, and
into one fleet report that shows the connection matched across the hosts."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nettrail.format import DEFAULT_PROBES, LOG_FILES, META, REPORT, SESSIONS
from helpers import ROOT, HostPair, as_host, read_jsonl
from test_security import as_nobody

CONTRIB = ROOT / "contrib" / "ansible"
HOSTS = ("web-3", "db-1")
RUN = "test-run"
SERVICE_PORT = 5432
CLIENT_BYTES = 12_345
SERVER_BYTES = 54_321
START_TIMEOUT_S = 600
# what a capture may take beyond its window (the play polls that long: keep it short)
SETUP_S = 180
MAX_START_SPREAD_S = 1.5
# ...plus this many Python start times of the machine: each host's capture is
# several Python starts (ansible's worker, the module, async_wrapper,
# nettrail) from the play's start, on 2 CPUs. Measured: 1.8-4.2 s apart in a
# VM under TCG, where Python starts in ~0.4 s; ~0.01 s here.
SPREAD_PER_PYTHON_START = 15
# a play starts Python many times (workers, modules, async_wrapper, nettrail):
# about 1 min here under load, minutes in a VM under TCG (300 s was too short)
PLAYBOOK_TIMEOUT_S = 900
BIN = Path(sys.executable).parent  # the virtualenv with nettrail and ansible-core

# What these test is the play (ansible's orchestration, the same on every
# kernel); the captures it runs are the kernel tests' (test_fleet_kernel.py
# renders a fleet of two real captures in the VMs). Under qemu TCG a play
# took 13 min to 25+ min of a VM's hour, its time hanging on Python start-ups.
pytestmark = pytest.mark.host_only


def write_inventory(directory: Path, targets: Path, pids: dict[str, int],
                    outputs: bool = True) -> Path:
    """Two local hosts; host_vars give each its own capture directory (unless
    not `outputs`: the playbook's default), its own host lock (both are this
    machine, which allows one capture at a time), and a nettrail that runs
    under the host's name and sees only the host's process (`pids`)."""
    directory.mkdir()
    (directory / "hosts.ini").write_text(
        "[fleet]\n" + "".join(f"{h} ansible_connection=local\n" for h in HOSTS) +
        "[fleet:vars]\n"
        f"ansible_python_interpreter={sys.executable}\n"
        # the tests run as root and this machine has no sudo
        "ansible_become=false\n"
        f"nettrail_local_bin={BIN / 'nettrail'}\n")
    (directory / "host_vars").mkdir()
    for host in HOSTS:
        # the run directory's parent must exist: nettrail makes only the last part
        (targets / host).mkdir(parents=True, mode=0o700)
        wrapper = targets / host / "nettrail"
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.join([*as_host(host), str(BIN / 'nettrail')])}"
                           f' "$@" -p {pids[host]}\n')
        wrapper.chmod(0o700)
        (directory / "host_vars" / f"{host}.yml").write_text(json.dumps({
            "nettrail_bin": str(wrapper),
            **({"nettrail_output": str(targets / host / "capture")} if outputs else {}),
            "nettrail_environment": {"NETTRAIL_RUN_DIR": str(targets / host / "run")}}))
    return directory / "hosts.ini"


def ansible_env(home: Path) -> dict[str, str]:
    """Ansible's own state in the test's directory, the playbook's config."""
    return {**os.environ, "ANSIBLE_CONFIG": str(CONTRIB / "ansible.cfg"),
            "ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_REMOTE_TMP": str(home / "remote-tmp"),
            "ANSIBLE_ASYNC_DIR": str(home / "async"), "ANSIBLE_NOCOLOR": "1"}


def wait_for_files(paths: list[Path], proc: subprocess.Popen) -> None:
    """Each capture writes meta.json once its probes are attached."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the captures did not start"
        time.sleep(0.05)



def python_start_s() -> float:
    """How long this machine takes to start Python (the fastest of three)."""
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - t0)
    return min(times)


def started(meta: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00"))


@pytest.fixture
def hosts() -> Iterator[HostPair]:
    pair = HostPair(f"a{os.getpid()}", SERVICE_PORT, CLIENT_BYTES, SERVER_BYTES)
    try:
        yield pair
    finally:
        pair.close()


def test_playbook_captures_every_host_at_once(tmp_path: Path, bpf: None, hosts: HostPair
                                              ) -> None:
    max_spread_s = MAX_START_SPREAD_S + SPREAD_PER_PYTHON_START * python_start_s()
    targets, fetched = tmp_path / "targets", tmp_path / "fetched"
    inventory = write_inventory(tmp_path / "inventory", targets,
                                {"web-3": hosts.client.pid, "db-1": hosts.server.pid})
    # a 5 s window: under emulation (VM kernels) the second capture may attach
    # a second or more after the first, and both must still be running
    proc = subprocess.Popen(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(CONTRIB / "fleet-capture.yml"),
         "-e", f"nettrail_interval=1 nettrail_count=5 nettrail_poll_s=0.5 nettrail_run={RUN} "
         f"nettrail_setup_s={SETUP_S}",
         "-e", f"nettrail_fetch_dir={fetched}"],
        env=ansible_env(tmp_path / "ansible"), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    wait_for_files([targets / h / "capture" / META for h in HOSTS], proc)
    hosts.go()
    output, _ = proc.communicate(timeout=PLAYBOOK_TIMEOUT_S)
    assert proc.returncode == 0, output

    run_dir = fetched / RUN
    summaries = json.loads((run_dir / "summaries.json").read_text())
    assert sorted(summaries) == sorted(HOSTS)
    metas = {}
    for host in HOSTS:
        local = run_dir / host
        assert sorted(p.name for p in local.iterdir()) == sorted(
            [META, REPORT, *(LOG_FILES[p] for p in DEFAULT_PROBES)])
        assert local.stat().st_mode & 0o077 == 0
        metas[host] = json.loads((local / META).read_text())
        assert summaries[host]["directory"] == str(targets / host / "capture")
        assert summaries[host]["summary"] == metas[host]["summary"]
        assert metas[host]["host"] == host
        sessions = [(r["tx_bytes"], r["rx_bytes"]) for r in read_jsonl(local / SESSIONS)]
        assert sessions == [(CLIENT_BYTES, SERVER_BYTES) if host == "web-3"
                            else (SERVER_BYTES, CLIENT_BYTES)], host
        assert "<html" in (local / REPORT).read_text()
    fleet = (run_dir / "fleet.html").read_text()
    assert hosts.conversation_html("web-3", "db-1") in fleet
    # the windows overlap (the connection was matched); and they started together
    # (measured here: ~50 ms apart; the bound leaves room for a loaded or an
    # emulated machine)
    spread_s = abs((started(metas["web-3"]) - started(metas["db-1"])).total_seconds())
    assert spread_s < max_spread_s, f"captures started {spread_s:.3f} s apart"


def test_default_directories_cannot_be_taken_first(tmp_path: Path, bpf: None) -> None:
    """The default capture directory on a target is NETTRAIL_TMP/nettrail-RUN-<random>,
    made by root 0700: another user (uid 65534) who pre-creates the names of
    the old scheme (nettrail-RUN) and of guesses at the new one in the shared,
    sticky directory does not keep any host's capture from landing."""
    shared = Path(tempfile.mkdtemp(prefix="nettrail-ansible-"))
    try:
        shared.chmod(0o1777)  # like /var/tmp
        for name in (f"nettrail-{RUN}", f"nettrail-{RUN}-", *(f"nettrail-{RUN}-{n:08x}"
                                                             for n in range(50))):
            as_nobody("mkdir", str(shared / name))
        inventory = write_inventory(tmp_path / "inventory", tmp_path / "targets",
                                    dict.fromkeys(HOSTS, os.getpid()), outputs=False)
        result = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(inventory),
             str(CONTRIB / "fleet-capture.yml"), "-e",
             f"nettrail_interval=0.5 nettrail_count=2 nettrail_poll_s=0.5 nettrail_run={RUN} "
             f"nettrail_setup_s={SETUP_S}",
             "-e", f"nettrail_fetch_dir={tmp_path / 'fetched'} nettrail_tmp_dir={shared}"],
            env=ansible_env(tmp_path / "ansible"), cwd=tmp_path, capture_output=True,
            text=True, timeout=PLAYBOOK_TIMEOUT_S)
        assert result.returncode == 0, result.stdout + result.stderr
        summaries = json.loads((tmp_path / "fetched" / RUN / "summaries.json").read_text())
        made = {Path(summaries[h]["directory"]) for h in HOSTS}
        assert len(made) == len(HOSTS)
        for directory in made:
            assert directory.parent == shared
            assert re.fullmatch(f"nettrail-{RUN}-[A-Za-z0-9_]+", directory.name), directory
            st = directory.lstat()
            assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
            assert (directory / META).is_file()
        for host in HOSTS:
            assert (tmp_path / "fetched" / RUN / host / REPORT).is_file()
    finally:
        shutil.rmtree(shared)
