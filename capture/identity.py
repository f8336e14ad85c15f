"""Who a pid is: the name of its thread-group leader, its pid in its own pid
namespace, its cgroup v2 path and what that path names (a container, a
systemd unit). Read from /proc once per new process, cached (bounded); a
cgroup id from BPF is turned into its path through the cgroup2 mount.

Everything read here was chosen by other processes (names, cgroup paths):
it is returned as text for the JSON logs, never used as a path to follow."""

from __future__ import annotations

import ctypes
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from nettrail.capture.names import ContainerNames, Names

MAX_ENTRIES = 16384
NO_NAMES = Names().fields()
PROC = Path("/proc")
MOUNTINFO = PROC / "self" / "mountinfo"
FILEID_KERNFS = 0xFE  # the file handle type of a cgroup2 (kernfs) directory

# A container id in a cgroup path: runtime scope units (systemd driver), a
# bare 64-hex directory (cgroupfs driver), a Kubernetes pod slice/directory.
_SCOPE = re.compile(r"^(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$")
_BARE_ID = re.compile(r"^[0-9a-f]{64}$")
_POD = re.compile(r"^kubepods.*pod([0-9a-f_-]{36})(?:\.slice)?$")
_CGROUPFS_POD = re.compile(r"^pod([0-9a-f-]{36})$")  # below /kubepods/ (cgroupfs driver)
_UNIT = re.compile(r"^[^/]+\.(?:service|scope)$")


@dataclass(frozen=True)
class Named:
    """What a cgroup path names."""

    container: str | None
    unit: str | None
    pod_uid: str | None = None


def names_in_cgroup(path: str | None) -> Named:
    """The container id, systemd unit and Kubernetes pod uid a cgroup path
    names, innermost first."""
    if not path:
        return Named(None, None)
    parts = [p for p in path.split("/") if p]
    unit = next((p for p in reversed(parts) if _UNIT.match(p)), None)
    in_kubepods = any(p.startswith("kubepods") for p in parts)
    pod = next((m[1].replace("_", "-") for p in reversed(parts)
                if (m := _POD.match(p) or (in_kubepods and _CGROUPFS_POD.match(p)))), None)
    for part in reversed(parts):
        if m := _SCOPE.match(part):
            return Named(m[1], unit, pod)
        if _BARE_ID.match(part):
            return Named(part, unit, pod)
        if _POD.match(part):
            return Named(pod, unit, pod)
    return Named(None, unit, pod)


def _unescape_mount_path(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def cgroup2_mount(mountinfo: Path = MOUNTINFO) -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
    /sys/fs/cgroup/unified on hybrid hosts), from this process's mountinfo."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if after.split()[:1] == ["cgroup2"] and len(fields) >= 5 and fields[3] == "/":
            return _unescape_mount_path(fields[4])
    return None


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("cgroup_id", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


class CgroupPaths:
    """cgroup id (what BPF reads: the cgroup directory's kernfs id) -> path
    relative to the cgroup2 root, by opening the id as a file handle
    (open_by_handle_at, root only) and reading where the descriptor points."""

    def __init__(self, mount: str | None) -> None:
        self.mount = mount
        self._root_fd: int | None = None

    def path(self, cgroup_id: int) -> str | None:
        if not self.mount or not cgroup_id:
            return None
        if self._root_fd is None:
            try:
                self._root_fd = os.open(self.mount, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                self.mount = None
                return None
        handle = _FileHandle(8, FILEID_KERNFS, cgroup_id)
        fd = _libc.open_by_handle_at(self._root_fd, ctypes.byref(handle),
                                     os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fd < 0:
            return None  # the cgroup is gone (ESTALE) or we may not (EPERM)
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        finally:
            os.close(fd)
        rel = where[len(self.mount):] if where.startswith(self.mount) else None
        return (rel or "/") if rel is not None and not where.endswith(" (deleted)") else None

    def close(self) -> None:
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None


@dataclass(frozen=True)
class ProcessFacts:
    """What /proc says about a process, read once."""

    comm: str | None   # the thread-group leader's name
    nspid: int | None  # pid in its own pid namespace, where that differs
    cgroup: str | None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def process_facts(pid: int, proc: Path = PROC) -> ProcessFacts:
    """A process's leader name, namespace pid and cgroup v2 path (None where
    the process is gone or the kernel does not say)."""
    base = proc / str(int(pid))
    comm = _read(base / "comm")
    status, cgroups = _read(base / "status") or "", _read(base / "cgroup") or ""
    nspid = None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            pids = line.split()[1:]
            nspid = int(pids[-1]) if len(pids) > 1 and pids[-1].isdigit() else None
            break
    cgroup = next((line[3:] for line in cgroups.splitlines() if line.startswith("0::")), None)
    return ProcessFacts(comm.rstrip("\n") if comm is not None else None, nspid, cgroup)


def ns_only(nspid: int | None, pid: int) -> int | None:
    """The namespace pid where it differs from the host pid."""
    return nspid if nspid and nspid != pid else None


class _Lru(OrderedDict):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: object, value: object) -> None:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)


class Identities:
    """The identity fields (docs/format.md) for (pid, comm[, cgroup id])."""

    def __init__(self, host: str, proc: Path = PROC, limit: int = MAX_ENTRIES,
                 names: ContainerNames | None = None) -> None:
        self.host = host
        self.proc = proc
        self.names = names or ContainerNames()
        self._facts = _Lru(limit)   # (pid, comm) -> ProcessFacts: a new name is a new process
        self._paths = _Lru(limit)   # cgroup id -> path
        self._named = _Lru(limit)   # path -> Named
        self._cgroups = CgroupPaths(cgroup2_mount())

    def _facts_of(self, pid: int, comm: str) -> ProcessFacts:
        key = (pid, comm)
        facts = self._facts.get(key)
        if facts is None:
            facts = process_facts(pid, self.proc)
            self._facts.put(key, facts)
        return facts

    def _path_of(self, cgroup_id: int) -> str | None:
        if cgroup_id not in self._paths:
            self._paths.put(cgroup_id, self._cgroups.path(cgroup_id))
        return self._paths[cgroup_id]

    def _named_in(self, path: str | None) -> Named:
        named = self._named.get(path)
        if named is None:
            named = names_in_cgroup(path)
            self._named.put(path, named)
        return named

    def identity(self, pid: int | None, comm: str, cgroup_id: int | None = None,
                 nspid: int | None = None) -> dict:
        """`comm` as BPF read it; `cgroup_id` and `nspid` as BPF read them, if
        it did (exact at the event, and known after the process exits)."""
        if not pid:
            return {"host": self.host, "pid": None, "comm": comm, "nspid": None,
                    "cgroup": None, "container": None, "unit": None, **NO_NAMES}
        facts = self._facts_of(pid, comm)
        cgroup = (self._path_of(cgroup_id) if cgroup_id else None) or facts.cgroup
        named = self._named_in(cgroup)
        return {"host": self.host, "pid": pid, "comm": facts.comm or comm,
                "nspid": ns_only(nspid or facts.nspid, pid), "cgroup": cgroup,
                "container": named.container, "unit": named.unit,
                **(self.names.fields(named.container, named.pod_uid)
                   if named.container or named.pod_uid else NO_NAMES)}

    def close(self) -> None:
        self._cgroups.close()
