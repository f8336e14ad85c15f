"""Container and pod names from fixture layouts (capture/names.py), root-free:
the kubelet's, Docker's and Podman's node-local files made here, hostile
names and planted links included; the cgroup path's pod uid; the filters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nettrail.capture import names as names_module
from nettrail.capture.identity import names_in_cgroup
from nettrail.capture.names import MAX_NAME_CHARS, ContainerNames, Layouts, Names, record_filter
from nettrail.report.reader import open_capture
from test_report import V2

POD_UID = "0b3c9f2e-5d41-4a7e-9c2b-6f1d8e2a4b70"
EVIL_UID = "9a8b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
K8S_ID, EVIL_ID = "a1" * 32, "b2" * 32
DOCKER_ID, LINKED_ID, FIFO_ID, BIG_ID = "c3" * 32, "d4" * 32, "e5" * 32, "f6" * 32
PODMAN_ID = "07" * 32
EVIL_NAMESPACE, EVIL_POD, EVIL_CONTAINER = "evil\x1b[2J", "pod\nname", "side\u202ecar"


def make_layouts(root: Path) -> Layouts:
    """What a node with a kubelet, Docker and Podman keeps, plus traps."""
    layouts = Layouts.under(root)
    for d in (layouts.pods, layouts.containers, layouts.docker, layouts.podman.parent):
        d.mkdir(parents=True)
    (layouts.pods / f"shop_web-7d9f_{POD_UID}" / "nginx").mkdir(parents=True)
    (layouts.pods / f"{EVIL_NAMESPACE}_{EVIL_POD}_{EVIL_UID}").mkdir()
    (layouts.pods / "not_a_pod_dir").mkdir()
    (layouts.containers / f"web-7d9f_shop_nginx-{K8S_ID}.log").symlink_to(
        layouts.pods / f"shop_web-7d9f_{POD_UID}" / "nginx" / "0.log")
    (layouts.containers / f"{EVIL_POD}_{EVIL_NAMESPACE}_{EVIL_CONTAINER}-{EVIL_ID}.log"
     ).symlink_to("/etc/shadow")  # only its name is ever read
    for cid, name in ((DOCKER_ID, "/db\x1b]0;pwned\x07" + "x" * 400), (FIFO_ID, None),
                      (BIG_ID, "/big")):
        (layouts.docker / cid).mkdir()
        config = layouts.docker / cid / "config.v2.json"
        if name is None:
            os.mkfifo(config)  # would block a reader that opened it blocking
        else:
            config.write_text(json.dumps({"Name": name, "Pad": "p" * (
                (1 << 20) if cid == BIG_ID else 0)}))
    elsewhere = root / "elsewhere" / LINKED_ID
    elsewhere.mkdir(parents=True)
    (elsewhere / "config.v2.json").write_text(json.dumps({"Name": "/linked"}))
    (layouts.docker / LINKED_ID).symlink_to(elsewhere)
    layouts.podman.write_text(json.dumps([{"id": PODMAN_ID, "names": ["cache"]},
                                          {"id": "x", "names": "not a list"}, 7]))
    return layouts


@pytest.fixture
def names(tmp_path: Path) -> ContainerNames:
    return ContainerNames(make_layouts(tmp_path))


def test_kubernetes_pod_and_container(names: ContainerNames) -> None:
    assert names.names(K8S_ID, POD_UID) == Names("nginx", "web-7d9f", "shop", POD_UID)
    # a pod without a container cgroup: its uid names it all the same
    assert names.names(None, POD_UID) == Names(None, "web-7d9f", "shop", POD_UID)


def test_hostile_kubernetes_names_are_printable(names: ContainerNames) -> None:
    got = names.names(EVIL_ID, EVIL_UID)
    assert got == Names("side\\u202ecar", "pod\\x0aname", "evil\\x1b[2J", EVIL_UID)


def test_docker_and_podman_names(names: ContainerNames) -> None:
    docker = names.names(DOCKER_ID, None).container_name
    assert docker.startswith("db\\x1b]0;pwned\\x07x") and len(docker) == MAX_NAME_CHARS
    assert names.names(PODMAN_ID, None).container_name == "cache"


@pytest.mark.parametrize("container_id", [LINKED_ID, FIFO_ID, BIG_ID, "00" * 32, "../../etc"])
def test_links_fifos_large_files_and_unknown_ids_give_no_name(names: ContainerNames,
                                                             container_id: str) -> None:
    assert names.names(container_id, None) == Names()


def test_a_layout_root_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    real = make_layouts(tmp_path / "real")
    planted = Layouts.under(tmp_path / "planted")
    planted.pods.parent.mkdir(parents=True)
    planted.pods.symlink_to(real.pods)
    assert ContainerNames(planted).names(None, POD_UID) == Names(pod_uid=POD_UID)


def test_a_container_that_appears_later_is_found(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    layouts = make_layouts(tmp_path)
    names = ContainerNames(layouts)
    late = "1f" * 32
    assert names.names(late, POD_UID).container_name is None
    (layouts.containers / f"web-7d9f_shop_late-{late}.log").touch()
    monkeypatch.setattr(names_module, "RETRY_S", 0.0)  # no waiting for the next look
    names._logs.read_at = -1.0
    assert names.names(late, POD_UID).container_name == "late"


def test_pod_uid_from_the_cgroup_path() -> None:
    systemd = ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
               f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{K8S_ID}.scope")
    assert names_in_cgroup(systemd).container == K8S_ID
    assert names_in_cgroup(systemd).pod_uid == POD_UID
    assert names_in_cgroup(f"/kubepods/besteffort/pod{POD_UID}/{K8S_ID}").pod_uid == POD_UID
    assert names_in_cgroup(f"/system.slice/docker-{DOCKER_ID}.scope").pod_uid is None


def test_filters_match_names_and_ids() -> None:
    web = {"container": K8S_ID, "container_name": "nginx", "pod": "web-7d9f",
           "pod_namespace": "shop"}
    db = {"container": DOCKER_ID, "container_name": "db", "pod": None, "pod_namespace": None}
    host = {"container": None, "container_name": None, "pod": None, "pod_namespace": None}
    assert record_filter() is None

    def kept(**options: tuple[str, ...]) -> list[dict]:
        keep = record_filter(**options)
        return [r for r in (web, db, host) if keep(r)]
    assert kept(containers=("db",)) == [db]
    assert kept(containers=(DOCKER_ID[:12],)) == [db]
    assert kept(containers=(DOCKER_ID[:8],)) == []  # too short to be an id
    assert kept(containers=("db", "nginx")) == [web, db]
    assert kept(pods=("web-7d9f",), namespaces=("shop",)) == [web]
    assert kept(pods=("web-7d9f",), namespaces=("other",)) == []


def test_older_captures_read_with_null_names() -> None:
    capture = open_capture(V2)  # made before the names: read as null
    records = [r for probe in ("bandwidth", "sessions", "dns") for r in capture.records(probe)]
    assert records and all(r["pod"] is None and r["container_name"] is None for r in records)
    assert not capture.warnings


def test_fields_are_remembered_once_complete(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    layouts = make_layouts(tmp_path)
    names = ContainerNames(layouts)
    assert names.fields(K8S_ID, POD_UID)["container_name"] == "nginx"
    late = "2e" * 32
    assert names.fields(late, POD_UID)["container_name"] is None
    for link in layouts.containers.iterdir():
        link.unlink()  # found names are not looked up again
    (layouts.containers / f"web-7d9f_shop_late-{late}.log").touch()
    assert names.fields(K8S_ID, POD_UID)["container_name"] == "nginx"
    assert names.fields(late, POD_UID)["container_name"] is None  # until RETRY_S has passed
    monkeypatch.setattr(names_module, "RETRY_S", 0.0)
    names._fields[(late, POD_UID)] = (names._fields[(late, POD_UID)][0], 0.0)
    names._logs.read_at = -1.0
    assert names.fields(late, POD_UID)["container_name"] == "late"
