"""Read a capture directory (docs/format.md): meta.json strictly, the logs
tolerantly. A corrupt, truncated or out-of-bounds line, or a missing log,
becomes a warning naming the file and line; the report is still made from
everything else. Anything may have written these files: types and bounds
are checked here (each log's msgspec Struct, derived from its description
in nettrail/format/), so nothing after this sees a value it cannot handle;
only regular files are opened (never a FIFO, a device or a symlink), and
no line, file or count read can push memory past the bounds below."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO

import msgspec

from nettrail import jsonio
from nettrail.errors import BadCapture, Cancelled, PrivilegeError
from nettrail.files import Unreadable, open_regular, read_regular
from nettrail.format import FORMAT_V1, LOGS, META, PROBE_OPTIONS, PROBES, READABLE_FORMATS, meta
from nettrail.format.fields import Record
from nettrail.format.log import Log
from nettrail.units import printable

MAX_WARNINGS_PER_FILE = 5
CHUNK_BYTES = 1 << 20     # read and decoded at a time
MAX_LINE_BYTES = 1 << 20  # a longer line is skipped (and counted) without being held


@cache
def _decoder(record_type: type[Record]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(record_type)


def _v1_upgrade(log: Log, host: str) -> Callable[[Record], Record]:
    """A /1 record in the /2 shape: what /1 did not record is null."""
    defaults = dict.fromkeys(log.field_names)

    def upgrade(old: Record) -> Record:
        fields = {**defaults, **old.as_dict(), "host": host, "kind": log.kind}
        if log.probe == "dns":  # /1's `host` was the name looked up
            fields.update(source="libc", name=old["host"], name_truncated=False)
        return log.record_type(**fields)
    return upgrade


@dataclass
class LineBlocks:
    """A log's complete lines, a block at a time, in bounded memory: a line
    longer than MAX_LINE_BYTES is skipped as it streams past, and reading
    stops at `max_bytes`."""
    f: BinaryIO
    max_bytes: int
    long_lines: list[int] = field(default_factory=list)  # their line numbers
    cut_short: bool = False   # max_bytes reached
    lines: int = 0            # lines handed out so far

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """(number of the block's first line, the block)."""
        left, skipping, read = b"", False, 0
        while chunk := self.f.read(CHUNK_BYTES):
            read += len(chunk)
            if read > self.max_bytes:
                self.cut_short = True
                return
            if skipping:  # inside a long line: drop up to its end
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                chunk, skipping = chunk[cut + 1:], False
            block = left + chunk
            cut = block.rfind(b"\n") + 1
            left = block[cut:]
            if len(left) > MAX_LINE_BYTES:
                self.lines += 1
                self.long_lines.append(self.lines)
                left, skipping = b"", True
            if cut:
                yield self._numbered(block[:cut])
        if left:  # a last line without its newline: a truncated write, most likely
            yield self._numbered(left)

    def _numbered(self, block: bytes) -> tuple[int, bytes]:
        first = self.lines + 1
        self.lines += block.count(b"\n") + (not block.endswith(b"\n"))
        return first, block


@dataclass
class CaptureDir:
    path: Path
    meta: dict
    warnings: list[str] = field(default_factory=list)
    # asked now and then while reading: True stops the report (a service stopping)
    cancelled: Callable[[], bool] | None = None
    # the directory, held open: every file is opened through it, `path` is for messages
    dir_fd: int = -1

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __del__(self) -> None:
        self.close()

    def records(self, probe: str) -> Iterator[Record]:
        """The probe's records, in file order; bad lines are skipped and noted."""
        for block in self.blocks(probe):
            yield from block

    def blocks(self, probe: str, summary: bool = False) -> Iterator[list[Record]]:
        """The same records, a block (up to CHUNK_BYTES of lines) at a time.
        `summary`: its summary log's, which exists only where the capture
        wrote one (/1 had none)."""
        log = LOGS[probe].summary if summary else LOGS[probe]
        if log is None or (summary and self.meta["format"] == FORMAT_V1):
            return
        try:
            f = open_regular(log.file, self.dir_fd)
        except FileNotFoundError:
            # a capture made before this probe existed does not name it, nor
            # one where an opt-in probe was not asked for
            if not summary and self.meta["probes"].get(
                    probe, {"status": "skipped"})["status"] != "skipped":
                self.warnings.append(f"{log.file} is missing: no {probe} data")
            return
        except (OSError, Unreadable, PrivilegeError) as exc:
            why = exc.problem if isinstance(exc, (Unreadable, PrivilegeError)) else exc.strerror
            self.warnings.append(f"{log.file} cannot be read ({why}): no {probe} data")
            return
        with f:
            yield from self._decoded(log, LineBlocks(f, log.max_bytes))

    def _decoded(self, log: Log, blocks: LineBlocks) -> Iterator[list[Record]]:
        v1 = self.meta["format"] == FORMAT_V1
        decoder = _decoder(log.v1_type if v1 else log.record_type)
        upgrade = _v1_upgrade(log, self.meta["host"]) if v1 else None
        intervals = self.meta["count"] if "interval" in log.field_names else None
        bad: list[int] = []
        left = log.line_budget
        for first, block in blocks:
            if self.cancelled and self.cancelled():
                raise Cancelled(f"report of {self.path} not rendered: nettrail is stopping",
                                f"render it later with `nettrail report {self.path}`")
            records = _decode_block(decoder, block, first, intervals, bad)
            if upgrade:
                records = [upgrade(r) for r in records]
            if len(records) > left:
                yield records[:left]
                self.warnings.append(f"{log.file}: only its first {log.line_budget:,} lines "
                                     "were read (the report's cost is bounded)")
                break
            left -= len(records)
            yield records
        bad.extend(blocks.long_lines)
        if bad:
            bad.sort()
            shown = ", ".join(map(str, bad[:MAX_WARNINGS_PER_FILE]))
            more = f" and {len(bad) - MAX_WARNINGS_PER_FILE} more" if len(
                bad) > MAX_WARNINGS_PER_FILE else ""
            self.warnings.append(f"{log.file}: skipped {len(bad)} unreadable line(s): "
                                 f"line {shown}{more}")
        if blocks.cut_short:
            self.warnings.append(f"{log.file}: only its first {log.max_bytes >> 20:,} MiB were "
                                 "read (the report's cost is bounded)")


def _decode_block(decoder: msgspec.json.Decoder, block: bytes, first: int,
                  intervals: int | None, bad: list[int]) -> list[Record]:
    """A block's records; its bad lines' numbers go to `bad`. The whole block
    is decoded at once; only a block holding a bad line is redone line by line."""
    try:
        records = decoder.decode_lines(block)
        if intervals is None or all(1 <= r.interval <= intervals for r in records):
            return records
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    records = []
    for number, line in enumerate(block.split(b"\n"), first):
        if not line.strip():
            continue
        try:
            record = decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            bad.append(number)
            continue
        # one interval number far beyond the window would size the timeline
        if intervals is not None and not 1 <= record.interval <= intervals:
            bad.append(number)
            continue
        records.append(record)
    return records


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise BadCapture(f"{path} is not a directory", "pass a capture directory") from None
    except FileNotFoundError:
        raise BadCapture(f"{path} does not exist", "pass a capture directory") from None
    except PermissionError:
        raise PrivilegeError(f"cannot read {path}: permission denied",
                             "run as the user who made the capture (sudo for root's)") from None


def _read_meta(path: Path, dir_fd: int) -> object:
    meta_path = path / META
    try:
        return jsonio.loads(read_regular(META, meta.MAX_BYTES, dir_fd))
    except FileNotFoundError:
        raise BadCapture(f"{path} is not a nettrail capture (no {META})",
                         "pass the directory nettrail capture printed") from None
    except PrivilegeError as exc:
        raise PrivilegeError(f"cannot read {meta_path}: permission denied", exc.fix) from None
    except Unreadable as exc:
        raise BadCapture(f"cannot read {meta_path}: {exc.problem}",
                         "the capture's meta.json is damaged") from None
    except (OSError, ValueError) as exc:
        raise BadCapture(f"cannot read {meta_path}: {exc}",
                         "the capture's meta.json is damaged") from None


@cache
def _meta_shape() -> type:
    return meta.shape(PROBES, tuple(PROBE_OPTIONS))


def open_capture(path: Path, cancelled: Callable[[], bool] | None = None,
                 dir_fd: int | None = None) -> CaptureDir:
    """The capture at `path`, its meta.json checked; `cancelled`: see CaptureDir.
    `dir_fd`: the directory already open (the capture's own report): read
    through a duplicate of it, and `path` is never looked up."""
    fd = os.dup(dir_fd) if dir_fd is not None else _open_dir(path)
    try:
        return CaptureDir(path, _checked_meta(path, _read_meta(path, fd)), cancelled=cancelled,
                          dir_fd=fd)
    except BaseException:
        os.close(fd)
        raise


def _checked_meta(path: Path, document: object) -> dict:
    meta_path = path / META
    if not isinstance(document, dict) or document.get("format") not in READABLE_FORMATS:
        found = repr(document.get("format") if isinstance(document, dict) else None)[:80]
        raise BadCapture(f"{meta_path} has format {found}, this nettrail reads "
                         f"{' and '.join(map(repr, READABLE_FORMATS))}",
                         "render it with the nettrail version that captured it")
    problem = meta.problem(document, _meta_shape())
    if problem:
        raise BadCapture(f"{meta_path} is damaged: {printable(problem)[:200]}",
                         "restore it from the capture, or re-run the capture")
    return document


def open_captures(paths: list[Path], cancelled: Callable[[], bool] | None = None
                  ) -> list[CaptureDir]:
    """The captures of a fleet report: one per host. Two captures of one
    host (the same `host` in meta.json) are refused, not merged: their
    windows and -p filters may overlap, and summing them would count the
    same bytes twice."""
    captures = [open_capture(path, cancelled) for path in paths]
    seen: dict[str, Path] = {}
    for capture in captures:
        host = capture.meta["host"]
        if host in seen:
            raise BadCapture(f"{seen[host]} and {capture.path} are both captures of host "
                             f"{host[:80]!r}",
                             "a fleet report takes one capture per host: render the other "
                             "on its own")
        seen[host] = capture.path
    return captures
