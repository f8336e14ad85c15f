"""A thin ctypes layer over the system libbpf.so.1: only the calls nettrail makes.

libbpf does the work (ELF, CO-RE relocation, loading, attaching, ring buffers);
this module declares its functions and turns its errors into ProbeError
(its log: libbpf_log).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import time
from collections.abc import Callable, Iterator
from ctypes import (CFUNCTYPE, POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint32,
                    c_uint64, c_void_p)

from nettrail.capture.libbpf_log import PRINT_FN, on_libbpf_print, refusals
from nettrail.errors import ProbeError, UnsupportedSystem

BTF_KIND_DATASEC = 15
# What libbpf 1.1 cannot attach: uprobe_multi links (kernel 6.6+), made here
# with the bpf() system call (union bpf_attr's link_create).
BPF_TRACE_UPROBE_MULTI = 48
BPF_F_UPROBE_MULTI_RETURN = 1
_BPF_LINK_CREATE = 28
_NR_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
_LINK_CREATE_UPROBE_MULTI = struct.Struct("<IIIIQQQQIII")
_BPF_ATTR_SIZE = 128
SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

# name: (restype, argtypes)
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (c_void_p, [PRINT_FN]),
    "libbpf_strerror": (c_int, [c_int, c_char_p, c_size_t]),
    "libbpf_major_version": (c_uint32, []),
    "libbpf_minor_version": (c_uint32, []),
    "bpf_object__open_file": (c_void_p, [c_char_p, c_void_p]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__btf": (c_void_p, [c_void_p]),
    "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_program__name": (c_char_p, [c_void_p]),
    "bpf_program__set_autoload": (c_int, [c_void_p, c_bool]),
    "bpf_program__autoload": (c_bool, [c_void_p]),
    "bpf_program__set_expected_attach_type": (c_int, [c_void_p, c_int]),
    "bpf_program__fd": (c_int, [c_void_p]),
    "bpf_obj_get_info_by_fd": (c_int, [c_int, c_void_p, POINTER(c_uint32)]),
    "bpf_program__attach": (c_void_p, [c_void_p]),
    "bpf_program__attach_iter": (c_void_p, [c_void_p, c_void_p]),
    "bpf_program__attach_cgroup": (c_void_p, [c_void_p, c_int]),
    "bpf_program__attach_uprobe_opts": (c_void_p, [c_void_p, c_int, c_char_p, c_size_t,
                                                   c_void_p]),
    "bpf_link__fd": (c_int, [c_void_p]),
    "bpf_link__destroy": (c_int, [c_void_p]),
    "bpf_iter_create": (c_int, [c_int]),
    "bpf_map__name": (c_char_p, [c_void_p]),
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__initial_value": (c_void_p, [c_void_p, POINTER(c_size_t)]),
    "bpf_map__reuse_fd": (c_int, [c_void_p, c_int]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_lookup_batch": (c_int, [c_int, c_void_p, c_void_p, c_void_p, c_void_p,
                                     POINTER(c_uint32), c_void_p]),
    "bpf_map_lookup_and_delete_batch": (c_int, [c_int, c_void_p, c_void_p, c_void_p,
                                                c_void_p, POINTER(c_uint32), c_void_p]),
    "btf__load_vmlinux_btf": (c_void_p, []),
    "btf__free": (None, [c_void_p]),
    "btf__find_by_name_kind": (c_int, [c_void_p, c_char_p, c_uint32]),
    "btf__type_by_id": (c_void_p, [c_void_p, c_uint32]),
    "btf__name_by_offset": (c_char_p, [c_void_p, c_uint32]),
    "btf__resolve_size": (ctypes.c_int64, [c_void_p, c_uint32]),
    "ring_buffer__new": (c_void_p, [c_int, SAMPLE_FN, c_void_p, c_void_p]),
    "ring_buffer__add": (c_int, [c_void_p, c_int, SAMPLE_FN, c_void_p]),
    "ring_buffer__consume": (c_int, [c_void_p]),
    "ring_buffer__free": (None, [c_void_p]),
}


class _UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts as of libbpf 1.1 (sz tells libbpf how much we know)."""

    _fields_ = [("sz", c_size_t), ("ref_ctr_offset", c_size_t), ("bpf_cookie", c_uint64),
                ("retprobe", c_bool), ("func_name", c_char_p)]


class _IterAttachOpts(ctypes.Structure):
    """struct bpf_iter_attach_opts (libbpf 1.1)."""

    _fields_ = [("sz", c_size_t), ("link_info", c_void_p), ("link_info_len", c_uint32)]


class ProgInfo(ctypes.Structure):
    """The tail of struct bpf_prog_info (uapi, append-only) up to
    recursion_misses: the kernel fills what fits in the length we pass."""

    _fields_ = [("head", ctypes.c_uint8 * 192), ("run_time_ns", c_uint64),
                ("run_cnt", c_uint64), ("recursion_misses", c_uint64)]


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size", c_uint32)]


class _BtfVarSecinfo(ctypes.Structure):
    _fields_ = [("type", c_uint32), ("offset", c_uint32), ("size", c_uint32)]


class _BtfMember(ctypes.Structure):
    _fields_ = [("name_off", c_uint32), ("type", c_uint32), ("offset", c_uint32)]


class _BtfNamed(ctypes.Structure):
    """struct btf_member and struct btf_enum start with name_off (both 12 / 8
    bytes: only the name is read, strides come from the kind)."""

    _fields_ = [("name_off", c_uint32)]


BTF_KIND_ENUM, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF = 6, 4, 8
_MEMBER_SIZE = {BTF_KIND_STRUCT: 12, BTF_KIND_ENUM: 8}


class KernelBtf:
    """The running kernel's BTF (/sys/kernel/btf/vmlinux), for asking which
    types, fields and helpers it has: features are decided from it, never
    from the version number."""

    def __init__(self) -> None:
        self._btf = _check_ptr(lib().btf__load_vmlinux_btf(), "kernel BTF")

    def has_type(self, name: str, kind: int) -> bool:
        return lib().btf__find_by_name_kind(self._btf, name.encode(), kind) > 0

    def _members(self, name: str, kind: int) -> list[tuple[str, int]]:
        """(name, address) of each member of a struct or value of an enum."""
        type_id = lib().btf__find_by_name_kind(self._btf, name.encode(), kind)
        if type_id <= 0:
            return []
        addr = lib().btf__type_by_id(self._btf, type_id)
        count = _BtfType.from_address(addr).info & 0xFFFF
        first, stride = addr + ctypes.sizeof(_BtfType), _MEMBER_SIZE[kind]
        return [(lib().btf__name_by_offset(
                     self._btf, _BtfNamed.from_address(at).name_off).decode(), at)
                for at in range(first, first + count * stride, stride)]

    def names_in(self, name: str, kind: int) -> set[str]:
        """Member names of a struct, or value names of an enum."""
        return {member for member, _ in self._members(name, kind)}

    def enum_values(self, name: str) -> dict[int, str]:
        """An enum's names by value (struct btf_enum: name_off, then a 32-bit value)."""
        return {ctypes.c_int32.from_address(at + 4).value: member
                for member, at in self._members(name, BTF_KIND_ENUM)}

    def close(self) -> None:
        if self._btf:
            lib().btf__free(self._btf)
            self._btf = 0


_lib: ctypes.CDLL | None = None
_libc = ctypes.CDLL(None, use_errno=True)


def lib() -> ctypes.CDLL:
    """libbpf.so.1, declared and with its log captured (loaded once)."""
    global _lib
    if _lib is None:
        try:
            loaded = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError as exc:
            raise UnsupportedSystem("libbpf.so.1 not found",
                                    "install it: apt-get install libbpf1") from exc
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(loaded, name)
            fn.restype, fn.argtypes = restype, argtypes
        loaded.libbpf_set_print(on_libbpf_print)
        _lib = loaded
    return _lib


def strerror(err: int) -> str:
    """libbpf's text for a (positive or negative) error number."""
    buf = ctypes.create_string_buffer(256)
    lib().libbpf_strerror(-abs(err), buf, len(buf))
    return buf.value.decode() or os.strerror(abs(err))


def _check_ptr(ptr: int | None, what: str) -> int:
    if not ptr:
        err = ctypes.get_errno() or errno.EINVAL
        raise ProbeError(f"{what}: {strerror(err)}")
    return ptr


def _check_rc(rc: int, what: str) -> None:
    if rc < 0:
        raise ProbeError(f"{what}: {strerror(rc)}")


# One iterator pass holds at most this much: a user who holds a socket in
# many file descriptors makes a row per descriptor
MAX_PASS_BYTES = 64 << 20


class BpfObject:
    """One opened BPF object file, its programs, maps and links."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._obj = _check_ptr(lib().bpf_object__open_file(path.encode(), None),
                               f"open {os.path.basename(path)}")
        self._links: list[int] = []
        self._link_fds: list[int] = []  # links made without libbpf
        self.rows_cut = 0  # iterator rows past MAX_PASS_BYTES (read_iter)

    def struct_layout(self, name: str) -> dict[str, tuple[int, int]] | None:
        """A struct as this object's BTF has it: (offset, size) in bytes per
        member, and its own size under "" (None if the object lacks it)."""
        btf = _check_ptr(lib().bpf_object__btf(self._obj), "object BTF")
        type_id = lib().btf__find_by_name_kind(btf, name.encode(), BTF_KIND_STRUCT)
        if type_id <= 0:
            return None
        addr = lib().btf__type_by_id(btf, type_id)
        members = (_BtfMember * (_BtfType.from_address(addr).info & 0xFFFF)).from_address(
            addr + ctypes.sizeof(_BtfType))
        layout = {"": (0, lib().btf__resolve_size(btf, type_id))}
        for m in members:  # no bitfields here: offset is in bits
            layout[lib().btf__name_by_offset(btf, m.name_off).decode()] = (
                m.offset // 8, lib().btf__resolve_size(btf, m.type))
        return layout

    def program_names(self) -> list[str]:
        names, prog = [], None
        while prog := lib().bpf_object__next_program(self._obj, prog):
            names.append(lib().bpf_program__name(prog).decode())
        return names

    def _program(self, name: str) -> int:
        return _check_ptr(lib().bpf_object__find_program_by_name(self._obj, name.encode()),
                          f"program {name}")

    def _map(self, name: str) -> int:
        return _check_ptr(lib().bpf_object__find_map_by_name(self._obj, name.encode()),
                          f"map {name}")

    def keep_only(self, programs: tuple[str, ...]) -> None:
        """Load just these programs (one hook set)."""
        for name in self.program_names():
            lib().bpf_program__set_autoload(self._program(name), name in programs)

    def set_rodata(self, values: dict[str, bytes]) -> None:
        """Set `const volatile` globals before load, found by name through BTF."""
        btf = _check_ptr(lib().bpf_object__btf(self._obj), "object BTF")
        sec_id = lib().btf__find_by_name_kind(btf, b".rodata", BTF_KIND_DATASEC)
        _check_rc(sec_id, ".rodata section")
        sec_addr = lib().btf__type_by_id(btf, sec_id)
        sec = _BtfType.from_address(sec_addr)
        infos = (_BtfVarSecinfo * (sec.info & 0xFFFF)).from_address(
            sec_addr + ctypes.sizeof(_BtfType))
        offsets = {}
        for info in infos:
            var = _BtfType.from_address(lib().btf__type_by_id(btf, info.type))
            offsets[lib().btf__name_by_offset(btf, var.name_off).decode()] = info
        size = c_size_t()
        data = _check_ptr(lib().bpf_map__initial_value(self._rodata_map(), ctypes.byref(size)),
                          ".rodata data")
        for name, value in values.items():
            info = offsets[name]
            if len(value) > info.size:
                raise ProbeError(f"{name}: {len(value)} bytes do not fit in {info.size}")
            ctypes.memmove(data + info.offset, value, len(value))

    def _rodata_map(self) -> int:
        m = None
        while m := lib().bpf_object__next_map(self._obj, m):
            if lib().bpf_map__name(m).decode().endswith(".rodata"):
                return m
        raise ProbeError(f"{os.path.basename(self.path)} has no .rodata")

    def load(self) -> None:
        refusals.clear()
        rc = lib().bpf_object__load(self._obj)
        if rc < 0:
            why = f" (verifier: {refusals[-1]})" if refusals else ""
            raise ProbeError(f"load {os.path.basename(self.path)}: {strerror(rc)}{why}")

    def attach(self, program: str) -> None:
        """Attach by the program's SEC() name (tracepoints, fentry, kprobes)."""
        link = lib().bpf_program__attach(self._program(program))
        self._links.append(_check_ptr(link, f"attach {program}"))

    def attach_uprobe(self, program: str, binary: str, offset: int, retprobe: bool) -> None:
        """A uprobe at a file offset of `binary` (the caller resolved the
        symbol, so libbpf does not open the file again by its path)."""
        opts = _UprobeOpts(sz=ctypes.sizeof(_UprobeOpts), retprobe=retprobe)
        link = lib().bpf_program__attach_uprobe_opts(self._program(program), -1,
                                                     binary.encode(), offset, ctypes.byref(opts))
        self._links.append(_check_ptr(link, f"uprobe at {offset:#x} in {binary}"))

    def attach_cgroup(self, program: str, cgroup_fd: int) -> None:
        """A cgroup program on a cgroup (a BPF link: other programs stay)."""
        link = lib().bpf_program__attach_cgroup(self._program(program), cgroup_fd)
        self._links.append(_check_ptr(link, f"attach {program} to a cgroup"))

    def expect_attach_type(self, program: str, attach_type: int) -> None:
        """Before load: the attach type the kernel checks at attach time."""
        _check_rc(lib().bpf_program__set_expected_attach_type(self._program(program),
                                                              attach_type),
                  f"attach type of {program}")

    def attach_uprobe_multi(self, program: str, binary: str, offsets: list[int],
                            cookies: list[int], retprobe: bool) -> None:
        """One uprobe_multi link on several file offsets of `binary`, each
        with its cookie (the program reads it with bpf_get_attach_cookie)."""
        path = ctypes.create_string_buffer(binary.encode())
        offs = (c_uint64 * len(offsets))(*offsets)
        cooks = (c_uint64 * len(cookies))(*cookies)
        attr = ctypes.create_string_buffer(_BPF_ATTR_SIZE)
        _LINK_CREATE_UPROBE_MULTI.pack_into(
            attr, 0, lib().bpf_program__fd(self._program(program)), 0,
            BPF_TRACE_UPROBE_MULTI, 0, ctypes.addressof(path), ctypes.addressof(offs), 0,
            ctypes.addressof(cooks), len(offsets),
            BPF_F_UPROBE_MULTI_RETURN if retprobe else 0, 0)
        fd = _libc.syscall(_NR_BPF, _BPF_LINK_CREATE, attr, _BPF_ATTR_SIZE)
        if fd < 0:
            raise ProbeError(f"uprobe_multi in {binary}: {os.strerror(ctypes.get_errno())}")
        self._link_fds.append(fd)

    def read_iter(self, program: str, over_map: str | None = None, row_bytes: int = 1) -> bytes:
        """Run a BPF iterator program once and return what it wrote, up to
        MAX_PASS_BYTES of whole `row_bytes` rows; the rows past that are read
        and counted (`rows_cut`), not kept. `over_map` names the map a
        map-element iterator walks."""
        opts = None
        if over_map:
            link_info = (c_uint32 * 4)(self.map_fd(over_map))  # union bpf_iter_link_info
            opts = ctypes.byref(_IterAttachOpts(ctypes.sizeof(_IterAttachOpts),
                                                ctypes.addressof(link_info),
                                                ctypes.sizeof(link_info)))
        link = _check_ptr(lib().bpf_program__attach_iter(self._program(program), opts),
                          f"attach {program}")
        try:
            fd = lib().bpf_iter_create(lib().bpf_link__fd(link))
            _check_rc(fd, f"run {program}")
            with os.fdopen(fd, "rb") as f:
                rows = f.read(MAX_PASS_BYTES - MAX_PASS_BYTES % row_bytes)
                cut = sum(map(len, iter(lambda: f.read(1 << 20), b"")))
            self.rows_cut += cut // row_bytes
            return rows
        finally:
            lib().bpf_link__destroy(link)

    def map_fd(self, name: str) -> int:
        return lib().bpf_map__fd(self._map(name))

    def program_infos(self) -> dict[str, ProgInfo]:
        """The kernel's run statistics of each loaded program."""
        infos = {}
        for name in self.program_names():
            fd = lib().bpf_program__fd(self._program(name))
            info, size = ProgInfo(), c_uint32(ctypes.sizeof(ProgInfo))
            if fd >= 0 and lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info),
                                                         ctypes.byref(size)) == 0:
                infos[name] = info
        return infos

    def reuse_map(self, name: str, fd: int) -> None:
        """Before load: use another object's map (by fd) for this one's `name`."""
        _check_rc(lib().bpf_map__reuse_fd(self._map(name), fd), f"share map {name}")

    def resize_map(self, name: str, max_entries: int) -> None:
        """Before load: a map's size (for a ring buffer, its bytes)."""
        _check_rc(lib().bpf_map__set_max_entries(self._map(name), max_entries),
                  f"resize map {name}")

    def close(self) -> None:
        for link in self._links:
            lib().bpf_link__destroy(link)
        self._links.clear()
        for fd in self._link_fds:
            os.close(fd)
        self._link_fds.clear()
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = 0


def map_update(fd: int, key: ctypes.Structure | ctypes._SimpleCData,
               value: ctypes.Structure | ctypes._SimpleCData) -> None:
    _check_rc(lib().bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), 0),
              "map update")


def map_lookup(fd: int, key: ctypes._SimpleCData, value: ctypes.Structure | ctypes._SimpleCData
               ) -> bool:
    return lib().bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value)) == 0


def map_max_entries(fd: int) -> int:
    """A map's max_entries (a ring buffer's: its bytes), from its info."""
    info, size = (c_uint32 * 32)(), c_uint32(32 * 4)  # struct bpf_map_info, and room
    _check_rc(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
              "map info")
    return info[4]  # after type, id, key_size, value_size


def map_items(fd: int, key_type: type, value_type: type) -> Iterator[tuple[object, object]]:
    """Every (key, value) of a map, walked key by key (entries may come and go)."""
    key, next_key = key_type(), key_type()
    prev = None
    while lib().bpf_map_get_next_key(fd, prev, ctypes.byref(next_key)) == 0:
        ctypes.memmove(ctypes.byref(key), ctypes.byref(next_key), ctypes.sizeof(key))
        prev = ctypes.byref(key)
        value = value_type()
        if lib().bpf_map_lookup_elem(fd, prev, ctypes.byref(value)) == 0:
            yield key_type.from_buffer_copy(key), value


def map_batch(fd: int, key_size: int, value_size: int, capacity: int,
              delete: bool) -> tuple[bytes, bytes]:
    """All keys and values of a hash map, as two byte strings, read in batches;
    with delete, each entry is removed as it is read (LOOKUP_AND_DELETE_BATCH)."""
    call = lib().bpf_map_lookup_and_delete_batch if delete else lib().bpf_map_lookup_batch
    keys = ctypes.create_string_buffer(key_size * capacity)
    values = ctypes.create_string_buffer(value_size * capacity)
    token_in, token_out = ctypes.create_string_buffer(64), ctypes.create_string_buffer(64)
    key_parts, value_parts = [], []
    first = True
    while True:
        count = c_uint32(capacity)
        rc = call(fd, None if first else token_in, token_out, keys, values,
                  ctypes.byref(count), None)
        err = ctypes.get_errno() if rc < 0 else 0
        key_parts.append(keys.raw[:count.value * key_size])
        value_parts.append(values.raw[:count.value * value_size])
        if rc < 0 and err != errno.ENOENT:
            _check_rc(-err, "map batch read")
        if rc < 0 or count.value == 0:
            return b"".join(key_parts), b"".join(value_parts)
        ctypes.memmove(token_in, token_out, len(token_out))
        first = False


class RingBuffers:
    """One libbpf ring_buffer manager over several BPF ring buffers. The
    probes submit without wakeups; user space drains on its own timer and
    hands each ring buffer's events over as one batch of bytes."""

    def __init__(self) -> None:
        self._rb = 0
        self._consumers: list[tuple[list[bytes], Callable[[bytes], None], object]] = []

    def add(self, map_fd: int, on_batch: Callable[[bytes], None]) -> None:
        pending: list[bytes] = []
        keep, copy = pending.append, ctypes.string_at

        @SAMPLE_FN
        def sample(_ctx: int, data: int, size: int) -> int:
            keep(copy(data, size))
            return 0

        self._consumers.append((pending, on_batch, sample))  # keep the C callback alive
        if not self._rb:
            self._rb = _check_ptr(lib().ring_buffer__new(map_fd, sample, None, None),
                                  "ring buffer")
        else:
            _check_rc(lib().ring_buffer__add(self._rb, map_fd, sample, None), "ring buffer")

    def wait(self, timeout_ms: int) -> None:
        """Sleep, then hand over what arrived meanwhile."""
        time.sleep(timeout_ms / 1000)
        self.drain()

    def drain(self) -> None:
        if self._rb:
            _check_rc(lib().ring_buffer__consume(self._rb), "ring buffer read")
        for pending, on_batch, _ in self._consumers:
            if pending:
                blob = b"".join(pending)
                pending.clear()
                on_batch(blob)

    def free(self) -> None:
        if self._rb:
            lib().ring_buffer__free(self._rb)
            self._rb = 0
