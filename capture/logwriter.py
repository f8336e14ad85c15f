"""The capture directory: one JSON line per event, flushed every interval,
every string in it through the one sanitiser (nettrail.units.printable),
files readable by their owner only (docs/format.md), all written through the
directory's fd (nettrail/files.py: no planted file or symlink is followed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nettrail import jsonio
from nettrail.errors import OutputError
from nettrail.files import OutputDir, writing
from nettrail.format import LOG_FILES, LOGS, META
from nettrail.units import printable_record

FIX = "free disk space or capture elsewhere with -o DIR"


class LogWriter:
    def __init__(self, directory: Path, probes: tuple[str, ...] = ()) -> None:
        """Every log's file, but an opt-in log's only where its probe is in `probes`."""
        self.directory = directory
        self._dir = OutputDir.private(directory, empty=True, fix=FIX)
        self._first_error: OutputError | None = None
        self._files: dict[str, BinaryIO] = {}  # by file name
        try:
            for probe, name in LOG_FILES.items():
                if not LOGS[probe].opt_in or probe in probes:
                    self._files[name] = self._dir.new_file(name)
        except BaseException:
            self.close()
            raise

    @property
    def dir_fd(self) -> int:
        """The capture directory's fd (closed with the writer)."""
        return self._dir.fd

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The first write error ends the capture, and it stays the error: a
        later write that fails for the same reason (the final meta.json on a
        full disk) reports that first failure again, not its own echo."""
        try:
            yield
        except OutputError as exc:
            self._first_error = self._first_error or exc
            raise OutputError(self._first_error.problem, self._first_error.fix) from exc

    def write(self, probe: str, records: list[dict], summary: bool = False) -> None:
        """Append records to the probe's log (`summary`: to its summary log,
        made at its first record), one JSON line each."""
        if not records:
            return
        log = LOGS[probe]
        if summary:
            assert log.summary is not None, f"the {probe} log has no summary log"
            log = log.summary
        data = jsonio.dump_printable_lines(records)
        with self._writing(), self._guard(log.file):
            if log.file not in self._files:
                self._files[log.file] = self._dir.new_file(log.file)
            self._files[log.file].write(data)

    def flush(self) -> None:
        for name, f in self._files.items():
            with self._writing(), self._guard(name):
                f.flush()

    def write_meta(self, meta: dict) -> None:
        with self._writing():
            self._dir.write(META, jsonio.dumps(printable_record(meta), indent=True))

    def _guard(self, name: str) -> contextlib.AbstractContextManager[None]:
        return writing(self.directory / name, FIX)

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files = {}
        self._dir.close()
