"""The capture directory: one JSON line per event, flushed every interval,
files readable by their owner only (docs/format.md)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from nettrail.errors import UsageError
from nettrail import jsonio
from nettrail.files import write_private, writing
from nettrail.logformat import LOG_FILES, META


def _writing(path: Path) -> contextlib.AbstractContextManager[None]:
    return writing(path, "free disk space or capture elsewhere with -o DIR")


class LogWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if directory.exists() and any(directory.iterdir()):
            raise UsageError(f"{directory} is not empty", "choose a new directory with -o")
        with _writing(directory):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        self._paths = {probe: directory / name for probe, name in LOG_FILES.items()}
        self._files = {probe: self._open(path) for probe, path in self._paths.items()}

    @staticmethod
    def _open(path: Path) -> BinaryIO:
        with _writing(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            return os.fdopen(fd, "wb", buffering=1 << 16)

    def write(self, probe: str, records: list[dict]) -> None:
        """Append records to the probe's log, one JSON line each."""
        if not records:
            return
        data = jsonio.dump_lines(records)
        with _writing(self._paths[probe]):
            self._files[probe].write(data)

    def flush(self) -> None:
        for probe, f in self._files.items():
            with _writing(self._paths[probe]):
                f.flush()

    def write_meta(self, meta: dict) -> None:
        write_private(self.directory / META, jsonio.dumps(meta, indent=True))

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
