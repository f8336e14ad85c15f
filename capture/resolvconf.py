"""The resolver configuration a process's libc reads: its /etc/resolv.conf,
as the process sees it (its root, its mount namespace), parsed as glibc does
(nameservers, search list, ndots, timeout, attempts, options).

The file is hostile input in a tree its process may control, so it is
reached as libcs.py reaches libraries: from the process's root
(/proc/PID/root) by openat2 with RESOLVE_IN_ROOT (a symlink resolves inside
that root, never into nettrail's) and RESOLVE_NO_MAGICLINKS (no /proc/*/fd
detours), as O_PATH first (no driver's open, no wait on a FIFO); only a
regular file that its process could read itself (readable by all, or its
owner's) is reopened through that fd and read, at most MAX_BYTES of it.
Each distinct file (device, inode, size, mtime) is parsed once."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

RESOLV_CONF = "etc/resolv.conf"
MAX_BYTES = 64 << 10
MAX_CONFIGS = 64      # distinct files listed in meta.json; more are counted
MAX_PIDS = 4096       # pids remembered (oldest forgotten first)
# glibc's limits (resolv.h MAXNS; res_init's caps on the options)
MAX_NAMESERVERS = 3
MAX_SEARCH = 8
MAX_DOMAIN_BYTES = 255
MAX_NDOTS, MAX_TIMEOUT_S, MAX_ATTEMPTS = 15, 30, 5
DEFAULTS = {"ndots": 1, "timeout_s": 5, "attempts": 2}
DEFAULT_NAMESERVER = "127.0.0.1"  # glibc and musl, with none configured
OPTION_NAMES = {"ndots": "ndots", "timeout": "timeout_s", "attempts": "attempts"}
OPTION_CAPS = {"ndots": MAX_NDOTS, "timeout_s": MAX_TIMEOUT_S, "attempts": MAX_ATTEMPTS}
# options without a value, as glibc names them (anything else is not kept)
FLAGS = ("rotate", "single-request", "single-request-reopen", "use-vc", "edns0", "trust-ad",
         "no-aaaa", "no-check-names", "inet6", "no-tld-query", "no-reload", "debug")

SYS_OPENAT2 = 437  # x86_64 and arm64 alike
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class ResolverConfig:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    ndots: int = DEFAULTS["ndots"]
    timeout_s: int = DEFAULTS["timeout_s"]
    attempts: int = DEFAULTS["attempts"]
    options: list[str] = field(default_factory=list)
    truncated: bool = False  # longer than MAX_BYTES: the rest was not read

    def as_json(self, number: int) -> dict:
        return {"id": number, "nameservers": self.nameservers, "search": self.search,
                "ndots": self.ndots, "timeout_s": self.timeout_s, "attempts": self.attempts,
                "options": self.options, "truncated": self.truncated}


def _option(config: ResolverConfig, word: str) -> None:
    name, _, value = word.partition(":")
    if name in OPTION_NAMES and value.isascii() and value.isdigit():
        key = OPTION_NAMES[name]
        setattr(config, key, min(int(value), OPTION_CAPS[key]))
    elif word in FLAGS and word not in config.options:
        config.options.append(word)


def parse(data: bytes, truncated: bool = False) -> ResolverConfig:
    """resolv.conf as glibc's res_init reads it: the last `search` or
    `domain` line wins, the first three nameservers count, options accumulate."""
    config = ResolverConfig(truncated=truncated)
    for raw in data.decode("utf-8", "replace").splitlines():
        words = raw.split()
        if not words or words[0][0] in "#;":
            continue
        keyword, args = words[0], words[1:]
        if keyword == "nameserver" and args and len(config.nameservers) < MAX_NAMESERVERS:
            try:
                config.nameservers.append(str(ipaddress.ip_address(args[0].split("%")[0])))
            except ValueError:
                pass  # glibc skips what is not an address too
        elif keyword in ("search", "domain") and args:
            domains = args[:1] if keyword == "domain" else args
            config.search = [d for d in domains
                             if len(d.encode()) <= MAX_DOMAIN_BYTES][:MAX_SEARCH]
        elif keyword == "options":
            for word in args:
                _option(config, word)
    if not config.nameservers:
        config.nameservers = [DEFAULT_NAMESERVER]
    return config


def _openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    how = OpenHow(flags, 0, resolve)
    fd = _libc.syscall(SYS_OPENAT2, dir_fd, path.encode(), ctypes.byref(how),
                       ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def read_resolv_conf(pid: int) -> tuple[tuple[int, int, int, int], bytes, bool] | None:
    """The identity (dev, inode, size, mtime_ns), first MAX_BYTES and whether
    there was more, of the resolv.conf process `pid` reads; None if it has
    none we may read (gone, missing, not a regular file, not its to read)."""
    try:
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        handle = _openat2(root, RESOLV_CONF, os.O_PATH | os.O_CLOEXEC,
                          RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    finally:
        os.close(root)
    try:
        st = os.fstat(handle)
        if not stat.S_ISREG(st.st_mode) or not _readable_by(st, pid):
            return None
        fd = os.open(f"/proc/self/fd/{handle}", OPEN_FLAGS)
    except OSError:
        return None
    finally:
        os.close(handle)
    try:
        data = os.pread(fd, MAX_BYTES + 1, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), data[:MAX_BYTES], \
        len(data) > MAX_BYTES


def _readable_by(st: os.stat_result, pid: int) -> bool:
    """Readable by everyone, or owned by the process's own uid: never a file
    only root may read that a process pointed its resolv.conf at."""
    if st.st_mode & stat.S_IROTH:
        return True
    try:
        return os.stat(f"/proc/{pid}").st_uid == st.st_uid and bool(st.st_mode & stat.S_IRUSR)
    except OSError:
        return False


class ResolvConfs:
    """The distinct configurations processes used, numbered from 1 for
    meta.json; each pid's is read once (by the window's thread and the exec
    watch's: locked)."""

    def __init__(self) -> None:
        self.by_file: dict[tuple[int, int, int, int], int] = {}
        self.configs: list[ResolverConfig] = []
        self.unlisted = 0
        self.by_pid: OrderedDict[int, int | None] = OrderedDict()
        self.lock = threading.Lock()

    def of_pid(self, pid: int) -> int | None:
        """The id of the configuration `pid` uses, None if unknown."""
        with self.lock:
            if pid in self.by_pid:
                return self.by_pid[pid]
        found = read_resolv_conf(pid)
        with self.lock:
            number = self._number(found) if found else None
            self.by_pid[pid] = number
            if len(self.by_pid) > MAX_PIDS:
                self.by_pid.popitem(last=False)
            return number

    def _number(self, found: tuple[tuple[int, int, int, int], bytes, bool]) -> int | None:
        identity, data, truncated = found
        if identity not in self.by_file:
            if len(self.configs) >= MAX_CONFIGS:
                self.unlisted += 1
                return None
            self.configs.append(parse(data, truncated))
            self.by_file[identity] = len(self.configs)
        return self.by_file[identity]

    def forget(self, pid: int) -> None:
        """A pid that runs a new program: read its configuration again."""
        with self.lock:
            self.by_pid.pop(pid, None)

    def as_json(self) -> list[dict]:
        with self.lock:
            return [config.as_json(i) for i, config in enumerate(self.configs, 1)]

    def as_detail(self) -> dict:
        """Its part of meta.json's probes.dns."""
        return {"resolv_confs": self.as_json(), "resolv_confs_unlisted": self.unlisted}
