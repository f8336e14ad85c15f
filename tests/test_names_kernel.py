"""Container and pod names in the records of a real capture: processes moved
into cgroups named as Kubernetes (systemd driver) and Docker name theirs,
the node's layouts made in the test (tests/test_names.py, hostile names
included) and read there through the in-process hook of
tests/tools/names_capture.py; then the same with --namespace and --container."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nettrail.capture.identity import cgroup2_mount
from nettrail.format import BANDWIDTH, DNS, SESSIONS
from helpers import TOOLS, CaptureRun, nettrail
from test_engine_kernel import Cgroups, finish, go, line, tcpcase
from test_names import DOCKER_ID, EVIL_ID, EVIL_UID, K8S_ID, POD_UID, make_layouts

NAMES_CAPTURE = (sys.executable, "-P", str(TOOLS / "names_capture.py"))
SEND_BYTES = 7_000


def pod_scope(root: Path, uid: str, container_id: str) -> Path:
    return (root / f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
            / f"cri-containerd-{container_id}.scope")


def capture_clients(tmp_path: Path, node: Path, cgroups: dict[str, Path], name: str,
                    *filters: str) -> tuple[CaptureRun, dict[str, int]]:
    """One capture (ended once the clients are done) around one client per
    cgroup, each sending SEND_BYTES to a sink outside them; their pids."""
    sink = tcpcase("sink", "--count", str(len(cgroups)))
    port = line(sink)
    clients = {key: tcpcase("client", "--port", port, "--send", str(SEND_BYTES), "--wait")
               for key in cgroups}
    pids = {}
    for key, client in clients.items():
        pids[key] = int(line(client).split()[1])
        Cgroups.move(pids[key], cgroups[key])
    run = CaptureRun(tmp_path / name, "1", "600", *filters,
                     command=(*NAMES_CAPTURE, str(node)))
    for client in clients.values():
        go(client)
    for client in clients.values():
        assert finish(client) == ["done"]
    assert finish(sink) == [str(SEND_BYTES * len(cgroups))]
    run.interrupt()
    status, _, err = run.finish()
    assert status == 0, err
    return run, pids


def test_names_in_the_records_and_the_filters(tmp_path: Path, bpf: None) -> None:
    node = tmp_path / "node"
    make_layouts(node)
    mount = cgroup2_mount()
    assert mount, "no cgroup2 mount"
    top = Path(mount) / f"nettrail-names-{os.getpid()}.slice"
    cgroups = {"web": pod_scope(top, POD_UID, K8S_ID), "evil": pod_scope(top, EVIL_UID, EVIL_ID),
               "db": top / f"docker-{DOCKER_ID}.scope"}
    for cgroup in cgroups.values():
        cgroup.mkdir(parents=True)
    try:
        run, pids = capture_clients(tmp_path, node, cgroups, "all")
        expected = {"web": ("nginx", "web-7d9f", "shop", POD_UID),
                    "evil": ("side\\u202ecar", "pod\\x0aname", "evil\\x1b[2J", EVIL_UID)}
        for key, pid in pids.items():
            mine = [r for log in (BANDWIDTH, SESSIONS) for r in run.records(log)
                    if r["pid"] == pid]
            assert {r["kind"] for r in mine} == {"bandwidth", "session"}, key
            for r in mine:
                got = (r["container_name"], r["pod"], r["pod_namespace"], r["pod_uid"])
                if key == "db":
                    assert got[0].startswith("db\\x1b]0;pwned\\x07x") and got[1:] == (
                        None, None, None)
                else:
                    assert got == expected[key]
        report = nettrail("report", str(run.directory))
        assert report.returncode == 0, report.stderr
        html = (run.directory / "report.html").read_text()
        # the tables name pods and containers (html-escaped, already printable)
        assert "pod shop/web-7d9f nginx" in html
        assert "pod evil\\x1b[2J/pod\\x0aname side\\u202ecar" in html
        assert "container db\\x1b]0;pwned\\x07x" in html
        filtered, pids = capture_clients(tmp_path, node, cgroups, "shop",
                                         "--namespace", "shop", "--container", "nginx",
                                         "--container", DOCKER_ID[:12])
        kept = [r for log in (BANDWIDTH, SESSIONS, DNS) for r in filtered.records(log)]
        assert kept and {r["pid"] for r in kept} == {pids["web"]}
        assert {r["pod_namespace"] for r in kept} == {"shop"}
        assert filtered.meta()["filters"]["namespaces"] == ["shop"]
    finally:
        for cgroup in cgroups.values():
            cgroup.rmdir()
            if cgroup.parent != top:
                cgroup.parent.rmdir()
        top.rmdir()
