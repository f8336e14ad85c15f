"""Writing files nettrail produces: atomically, readable by their owner only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from nettrail.errors import OutputError


@contextlib.contextmanager
def writing(path: Path, fix: str = "free disk space or write elsewhere with -o") -> Iterator[None]:
    """Turn an OSError while writing `path` into one clear OutputError."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", fix) from exc


def write_private(path: Path, data: bytes) -> None:
    """Replace a file atomically (temporary file, then rename), mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
