"""Container and pod names without an orchestrator API, from what the
runtimes keep on the node (docs/probes.md, "Identity"):

- Kubernetes (the kubelet's log layout): /var/log/pods/<namespace>_<pod>_<uid>/
  names a pod by its uid; /var/log/containers/<pod>_<namespace>_<container>-<id>.log
  names a container by its id.
- Docker: /var/lib/docker/containers/<id>/config.v2.json, its "Name".
- Podman (root's): /var/lib/containers/storage/overlay-containers/containers.json,
  each container's "names".

Every name there was chosen by someone else: directories are opened with
O_NOFOLLOW below each layout's root, /var/log/containers' entries (symlinks)
are only listed, never opened, files are read whole only if small and regular,
listings stop at MAX_ENTRIES, and names come out printable and cut. A miss is
looked for again at most every RETRY_S (a container's files appear as it
starts). The roots are LAYOUTS; tests point them elsewhere by replacing that
module attribute in the process they run (tests/tools/names_capture.py), never
through the environment."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nettrail import jsonio
from nettrail.errors import NettrailError
from nettrail.files import DIR_FLAGS, read_regular
from nettrail.units import printable

MAX_ENTRIES = 100_000          # directory entries read per listing
MAX_CONFIG_BYTES = 1 << 20     # one Docker config.v2.json
MAX_PODMAN_BYTES = 16 << 20    # Podman's list of all its containers
MAX_NAME_CHARS = 253           # a DNS subdomain: Kubernetes' longest name
RETRY_S = 2.0
CACHE_ENTRIES = 16384

_ID = re.compile(r"[0-9a-f]{64}", re.ASCII)
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_HEX = re.compile(r"[0-9a-f]+", re.ASCII)
_CONTAINER_LOG = re.compile(r"(.+)-([0-9a-f]{64})\.log", re.ASCII | re.DOTALL)


@dataclass(frozen=True)
class Layouts:
    pods: Path = Path("/var/log/pods")
    containers: Path = Path("/var/log/containers")
    docker: Path = Path("/var/lib/docker/containers")
    podman: Path = Path("/var/lib/containers/storage/overlay-containers/containers.json")

    @classmethod
    def under(cls, root: Path) -> Layouts:
        """The same layouts below `root` (tests)."""
        return cls(*(root / str(p).lstrip("/") for p in (
            cls.pods, cls.containers, cls.docker, cls.podman)))


LAYOUTS = Layouts()


@dataclass(frozen=True)
class Names:
    container_name: str | None = None
    pod: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = None

    def fields(self) -> dict[str, str | None]:
        """As the records carry them (nettrail/format/log.py, IDENTITY)."""
        return {"container_name": self.container_name, "pod": self.pod,
                "pod_namespace": self.pod_namespace, "pod_uid": self.pod_uid}


def record_filter(containers: tuple[str, ...] = (), pods: tuple[str, ...] = (),
                  namespaces: tuple[str, ...] = ()) -> Callable[[dict], bool] | None:
    """capture --container/--pod/--namespace: a record is kept when it
    matches one value of each option given (a container by name, or by id
    or its first 12 or more hex digits); None when none was given."""
    if not (containers or pods or namespaces):
        return None
    wanted_ids = tuple(c for c in containers if len(c) >= 12 and _HEX.fullmatch(c))

    def keep(r: dict) -> bool:
        if containers and r.get("container_name") not in containers and not (
                wanted_ids and (r.get("container") or "").startswith(wanted_ids)):
            return False
        return ((not pods or r.get("pod") in pods)
                and (not namespaces or r.get("pod_namespace") in namespaces))
    return keep


def clean(text: object) -> str | None:
    """A name as the records carry it: printable, at most MAX_NAME_CHARS."""
    name = printable(text)[:MAX_NAME_CHARS] if isinstance(text, str) else ""
    return name or None


def _entries(directory: Path) -> Iterator[str]:
    """Names in a layout directory, at most MAX_ENTRIES (none if it is absent)."""
    try:
        fd = os.open(directory, DIR_FLAGS | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        with os.scandir(fd) as it:
            for n, entry in enumerate(it):
                if n >= MAX_ENTRIES:
                    return
                yield entry.name
    except OSError:
        return
    finally:
        os.close(fd)


class _Lookup:
    """A table read again on a miss, at most every RETRY_S."""

    def __init__(self, read: Callable[[], dict[str, object]]) -> None:
        self.read = read
        self.table: dict[str, object] = {}
        self.read_at = -RETRY_S

    def get(self, key: str) -> object:
        if key not in self.table and time.monotonic() - self.read_at >= RETRY_S:
            self.read_at = time.monotonic()
            self.table = self.read()
        return self.table.get(key)


class ContainerNames:
    def __init__(self, layouts: Layouts | None = None) -> None:
        self.layouts = layouts or LAYOUTS
        self._pods = _Lookup(self._read_pods)
        self._logs = _Lookup(self._read_container_logs)
        self._podman = _Lookup(self._read_podman)
        self._docker: dict[str, str | None] = {}
        self._docker_read_at: dict[str, float] = {}
        # (id, uid) -> (fields, when to look again: None once all are found)
        self._fields: dict[tuple[str | None, str | None],
                           tuple[dict[str, str | None], float | None]] = {}

    def fields(self, container_id: str | None, pod_uid: str | None) -> dict[str, str | None]:
        """names() as record fields, remembered: looked up again only while
        something is missing, at most every RETRY_S (identity runs per record)."""
        key = (container_id, pod_uid)
        known = self._fields.get(key)
        now = time.monotonic()
        if known is not None and (known[1] is None or now < known[1]):
            return known[0]
        names = self.names(container_id, pod_uid)
        complete = ((names.container_name or not container_id
                     or not _ID.fullmatch(container_id)) and (names.pod or not pod_uid))
        if len(self._fields) >= CACHE_ENTRIES:
            self._fields.clear()
        self._fields[key] = (names.fields(), None if complete else now + RETRY_S)
        return self._fields[key][0]

    def names(self, container_id: str | None, pod_uid: str | None) -> Names:
        pod = self._pods.get(pod_uid) if pod_uid else None
        namespace, pod_name = pod if isinstance(pod, tuple) else (None, None)
        container = None
        if container_id and _ID.fullmatch(container_id):
            logged = self._logs.get(container_id)
            container = (self._kubernetes_container(logged, pod_name, namespace)
                         if isinstance(logged, str) else None)
            if container is None and not pod_uid:
                container = self._docker_name(container_id) or self._podman_name(container_id)
        return Names(clean(container), clean(pod_name), clean(namespace),
                     pod_uid if pod_uid and _UID.fullmatch(pod_uid) else None)

    # -- Kubernetes -------------------------------------------------------

    def _read_pods(self) -> dict[str, object]:
        """uid -> (namespace, pod) from <namespace>_<pod>_<uid> (a namespace
        and a pod name have no "_")."""
        pods: dict[str, object] = {}
        for name in _entries(self.layouts.pods):
            prefix, _, uid = name.rpartition("_")
            namespace, sep, pod = prefix.partition("_")
            if sep and _UID.fullmatch(uid):
                pods[uid] = (namespace, pod)
        return pods

    def _read_container_logs(self) -> dict[str, object]:
        """id -> "<pod>_<namespace>_<container>", from the log links' names."""
        logs: dict[str, object] = {}
        for name in _entries(self.layouts.containers):
            if m := _CONTAINER_LOG.fullmatch(name):
                logs[m[2]] = m[1]
        return logs

    @staticmethod
    def _kubernetes_container(logged: str, pod: str | None,
                              namespace: str | None) -> str | None:
        if pod is not None and logged.startswith(f"{pod}_{namespace}_"):
            return logged[len(pod) + len(namespace or "") + 2:]
        parts = logged.split("_")
        return parts[2] if len(parts) == 3 else None

    # -- Docker, Podman ---------------------------------------------------

    def _docker_name(self, container_id: str) -> str | None:
        now = time.monotonic()
        if (self._docker.get(container_id) is None
                and now - self._docker_read_at.get(container_id, -RETRY_S) >= RETRY_S):
            if len(self._docker) >= CACHE_ENTRIES:
                self._docker.clear()
                self._docker_read_at.clear()
            self._docker_read_at[container_id] = now
            self._docker[container_id] = self._read_docker(container_id)
        return self._docker.get(container_id)

    def _read_docker(self, container_id: str) -> str | None:
        try:
            root = os.open(self.layouts.docker, DIR_FLAGS | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fd = os.open(container_id, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root)
            try:
                config = jsonio.loads(read_regular("config.v2.json", MAX_CONFIG_BYTES, fd))
            finally:
                os.close(fd)
        except (OSError, ValueError, NettrailError):
            return None
        finally:
            os.close(root)
        name = config.get("Name") if isinstance(config, dict) else None
        return name.lstrip("/") if isinstance(name, str) else None

    def _podman_name(self, container_id: str) -> str | None:
        name = self._podman.get(container_id)
        return name if isinstance(name, str) else None

    def _read_podman(self) -> dict[str, object]:
        path = self.layouts.podman
        try:
            parent = os.open(path.parent, DIR_FLAGS | os.O_NOFOLLOW)
        except OSError:
            return {}
        try:
            containers = jsonio.loads(read_regular(path.name, MAX_PODMAN_BYTES, parent))
        except (OSError, ValueError, NettrailError):
            return {}
        finally:
            os.close(parent)
        table: dict[str, object] = {}
        for c in containers[:MAX_ENTRIES] if isinstance(containers, list) else []:
            names = c.get("names") if isinstance(c, dict) else None
            if isinstance(names, list) and names and isinstance(c.get("id"), str):
                table[c["id"]] = names[0]
        return table
