"""The files whose name lookups the dns probe traces: every distinct libc that
processes map, and executables that contain getaddrinfo/gethostbyname*
themselves (static binaries), found through their ELF symbols.

Everything about another process is hostile: its maps text, its root, its
files. So a file is never reached by a path: it is opened through the
process's own mapping (/proc/PID/map_files/START-END, the kernel's link to
the mapped file itself, whatever root or mount namespace the process has),
first as O_PATH (no open of a device's driver, no wait on a FIFO), then, once
fstat says it is a regular file, reopened through that fd for reading."""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

LOOKUP_FUNCTIONS = ("getaddrinfo", "gethostbyname", "gethostbyname2", "gethostbyname_r",
                    "gethostbyname2_r")
LIBC_NAME = re.compile(r"/(?:libc\.so(?:\.6)?|libc-[0-9.]+\.so|"
                       r"(?:libc|ld)-?\.?musl-\w+\.so\.1)$")
DELETED = " (deleted)"
# Files probed at most, and files listed as not probed at most: one user can
# map any number of files named libc.so.6, and each costs a parse and up to
# ten uprobes, an fd each (32 files: 320 fds, well inside a 1024 fd limit).
MAX_FILES = 32
MAX_LISTED = 64
# Symbol tables larger than this are not read (a symbol table of a huge binary
# would cost seconds).
MAX_SYMBOLS_BYTES = 8 << 20
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

ELF_MAGIC = b"\x7fELF"
ELF64_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
ELF64_PHDR = struct.Struct("<IIQQQQQQ")
ELF64_SHDR = struct.Struct("<IIQQQQIIQQ")
ELF64_SYM = struct.Struct("<IBBHQQ")
PT_INTERP = 3
SHT_SYMTAB, SHT_DYNSYM = 2, 11
STT_FUNC = 2
STB_LOCAL = 0
NAME_PREFIX = max(map(len, LOOKUP_FUNCTIONS)) + 1


class NotProbeable(Exception):
    """Why a mapped file cannot be probed (its text goes into meta.json)."""


class ProcessGone(NotProbeable):
    """The process exited or unmapped the file: nothing left to probe."""


@dataclass(frozen=True)
class Mapping:
    """One file-backed mapping line of /proc/PID/maps."""

    pid: int
    span: str         # START-END, the name of its /proc/PID/map_files entry
    path: str         # as the maps line prints it: untrusted text
    key: tuple[str, int]  # device and inode as printed: the same file
    executable: bool  # the process's main program


@dataclass
class Target:
    """A file opened for probing: keep `fd` until attached, then close it."""

    mapping: Mapping
    fd: int
    kind: str                    # libc / executable
    offsets: dict[str, int]      # function: file offset

    @property
    def attach_path(self) -> str:
        """A path to exactly this open file that nobody else can redirect."""
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class Library:
    """What was probed and what was not, for meta.json."""

    path: str
    pid: int
    kind: str
    functions: list[str]
    missing: list[str]

    def as_json(self) -> dict:
        return {"path": self.path, "pid": self.pid, "kind": self.kind,
                "functions": self.functions, "missing": self.missing}


@dataclass
class Finder:
    """Finds each file once: by maps key before opening, by (dev, inode) after."""

    seen_keys: set[tuple[str, int]] = field(default_factory=set)
    seen_inodes: set[tuple[int, int]] = field(default_factory=set)
    opened: int = 0
    not_probed: list[dict] = field(default_factory=list)
    not_listed: int = 0

    def skip(self, mapping: Mapping, reason: str) -> None:
        """Count a file that will not be probed; list the first few."""
        if len(self.not_probed) < MAX_LISTED:
            self.not_probed = [*self.not_probed,
                               {"path": mapping.path, "pid": mapping.pid, "reason": reason}]
        else:
            self.not_listed += 1

    def targets(self, pids: Iterable[int], with_libc: set[int] | None = None
                ) -> Iterator[Target]:
        """Each new file of these processes that has lookup functions, opened;
        the pids that map a libc are added to `with_libc`."""
        found = list(self.new_mappings(pids, set() if with_libc is None else with_libc))
        # root's files first: files other users made cannot crowd them out
        found.sort(key=owned_by_others)
        for mapping in found:
            if self.opened >= MAX_FILES:
                self.skip(mapping, f"limit of {MAX_FILES} probed files reached")
                continue
            try:
                target = self.open_target(mapping)
            except ProcessGone:  # another process mapping it may still be there
                self.seen_keys.discard(mapping.key)
                continue
            except NotProbeable as exc:
                if not mapping.executable:
                    self.skip(mapping, str(exc))
                continue
            if target:
                self.opened += 1
                yield target

    def new_mappings(self, pids: Iterable[int], with_libc: set[int]) -> Iterator[Mapping]:
        for pid in pids:
            for mapping in candidate_mappings(pid):
                if not mapping.executable:
                    with_libc.add(pid)
                if mapping.key not in self.seen_keys:
                    self.seen_keys.add(mapping.key)
                    yield mapping

    def open_target(self, mapping: Mapping) -> Target | None:
        """The mapped file opened, or None if it was seen under another key or
        is an executable without lookup functions of its own."""
        fd = open_mapped(mapping)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in self.seen_inodes:
                os.close(fd)
                return None
            self.seen_inodes.add((st.st_dev, st.st_ino))
            offsets = function_offsets(fd, static_only=mapping.executable)
        except (NotProbeable, OSError) as exc:
            os.close(fd)
            if mapping.executable:
                return None  # most programs are not static: nothing to say
            raise NotProbeable(exc.strerror if isinstance(exc, OSError) else str(exc)) from exc
        if not offsets:
            os.close(fd)
            if mapping.executable:
                return None
            raise NotProbeable("no lookup function in its symbols")
        return Target(mapping, fd, "executable" if mapping.executable else "libc", offsets)


def all_pids() -> list[int]:
    """Every process, this one first."""
    own = os.getpid()
    return [own, *sorted(int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != own)]


def candidate_mappings(pid: int) -> list[Mapping]:
    """The libc mappings of a process and its main program's, one per file."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as maps:
            lines = maps.read().decode("utf-8", "replace").splitlines()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:  # gone, a kernel thread, or not ours to read
        return []
    found: dict[tuple[str, int], Mapping] = {}
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/") or fields[4] == "0":
            continue
        path = fields[5].removesuffix(DELETED)
        key = (fields[3], int(fields[4]))
        is_exe = fields[5] == exe
        if key not in found and (is_exe or LIBC_NAME.search(path)):
            found[key] = Mapping(pid, map_files_name(fields[0]), path, key, is_exe)
    return list(found.values())


def map_files_name(span: str) -> str:
    """maps prints 00400000-00401000; map_files names it 400000-401000."""
    start, end = span.split("-")
    return f"{int(start, 16):x}-{int(end, 16):x}"


def owned_by_others(mapping: Mapping) -> bool:
    """The mapped file belongs to someone other than root (stat follows the
    kernel's link to the file itself and opens nothing)."""
    try:
        return os.stat(f"/proc/{mapping.pid}/map_files/{mapping.span}").st_uid != 0
    except OSError:
        return True


def open_mapped(mapping: Mapping) -> int:
    """A read-only fd of the mapped file itself, never of whatever a path
    names now. O_PATH first: opening it runs no driver's open and cannot
    block; only a regular file is reopened (through the fd, not a path)."""
    link = f"/proc/{mapping.pid}/map_files/{mapping.span}"
    try:
        handle = os.open(link, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ProcessGone() from exc
    except OSError as exc:
        raise NotProbeable(f"cannot open the mapping: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise NotProbeable("not a regular file")
        return os.open(f"/proc/self/fd/{handle}", OPEN_FLAGS)
    except OSError as exc:
        raise NotProbeable(f"cannot open the mapping: {exc.strerror}") from exc
    finally:
        os.close(handle)


def _read(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise NotProbeable("truncated ELF file")
    return data


def function_offsets(fd: int, static_only: bool = False) -> dict[str, int]:
    """File offsets of the lookup functions an ELF file defines (what a uprobe
    attaches to). `static_only`: an executable with a program interpreter gets
    its lookups from a libc, so its symbols are not read."""
    header = ELF64_HEADER.unpack(_read(fd, 0, ELF64_HEADER.size))
    ident, phoff, shoff, phentsize, phnum = header[0], header[5], header[6], header[9], header[10]
    shentsize, shnum = header[11], header[12]
    if ident[:4] != ELF_MAGIC or ident[4] != 2 or ident[5] != 1:
        raise NotProbeable("not a 64-bit little-endian ELF file")
    if static_only and _has_interpreter(fd, phoff, phentsize, phnum):
        return {}
    if shentsize != ELF64_SHDR.size or not 0 < shnum < 0x10000:
        raise NotProbeable("no ELF section headers")
    sections = [ELF64_SHDR.unpack(s) for s in
                _chunks(_read(fd, shoff, shnum * shentsize), shentsize)]
    offsets: dict[str, int] = {}
    for sh_type in (SHT_DYNSYM, SHT_SYMTAB):
        for section in sections:
            if section[1] == sh_type and section[6] < len(sections):
                _find_functions(fd, section, sections, offsets)
    return offsets


def _has_interpreter(fd: int, phoff: int, phentsize: int, phnum: int) -> bool:
    if phentsize != ELF64_PHDR.size or phnum > 0x10000:
        raise NotProbeable("bad ELF program headers")
    table = _read(fd, phoff, phnum * phentsize)
    return any(ph[0] == PT_INTERP for ph in ELF64_PHDR.iter_unpack(table))


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _find_functions(fd: int, symtab: tuple, sections: list[tuple],
                    offsets: dict[str, int]) -> None:
    """Add the lookup functions this symbol table defines (global or weak
    functions; the first definition of a name wins)."""
    strtab = sections[symtab[6]]
    if symtab[5] > MAX_SYMBOLS_BYTES or strtab[5] > MAX_SYMBOLS_BYTES:
        return
    names = _read(fd, strtab[4], strtab[5])
    if not any(n.encode() + b"\0" in names for n in LOOKUP_FUNCTIONS):
        return
    symbols = _read(fd, symtab[4], symtab[5] - symtab[5] % ELF64_SYM.size)
    for st_name, info, _other, shndx, value, _size in ELF64_SYM.iter_unpack(symbols):
        if info & 0xF != STT_FUNC or info >> 4 == STB_LOCAL or not 0 < shndx < len(sections):
            continue
        # names may share tails in the string table: read each one where it starts
        name = names[st_name:st_name + NAME_PREFIX].split(b"\0", 1)[0].decode("latin-1")
        if name in LOOKUP_FUNCTIONS and name not in offsets:
            section = sections[shndx]
            offsets[name] = value - section[3] + section[4]


def find_libcs(pids: Iterable[int] = ()) -> list[Mapping]:
    """The mappings of the distinct lookup files these (or all) processes use."""
    found = []
    for target in Finder().targets(list(pids) or all_pids()):
        found.append(target.mapping)
        target.close()
    return found
