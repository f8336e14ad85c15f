"""JSON for logs and caches. Lines are written by msgspec (a dependency:
one call a batch, 0.6 µs a record where a call of orjson's per record cost
4.4); documents are read and written by orjson when installed, the standard
library otherwise. All write the same documents: UTF-8, no spaces inside a
line, one record per line."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from nettrail.units import printable_record

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by installs without the extra
    orjson = None


def loads(data: bytes | str) -> Any:
    """Parse one document; ValueError when it is not JSON."""
    return orjson.loads(data) if orjson else json.loads(data)


_LINES = msgspec.json.Encoder()


def dump_lines(records: list[dict]) -> bytes:
    """Records as JSON Lines, each ending in a newline."""
    return _LINES.encode_lines(records)


def dump_printable_lines(records: list[dict]) -> bytes:
    """dump_lines of the records with printable() applied to every string in
    them (printable_record): what a log holds. Checked on the lines, at C
    speed: ASCII without a backslash or DEL means every string was printable
    ASCII already (a control character or a quote would have been escaped
    with a backslash), so printable() would change nothing. Otherwise each
    record is made printable (the slow way, about 6 µs a record), as it is
    when a string holds a lone surrogate (undecodable bytes), which UTF-8
    cannot encode."""
    try:
        data = dump_lines(records)
        if data.isascii() and b"\\" not in data and b"\x7f" not in data:
            return data
    except UnicodeEncodeError:
        pass
    return dump_lines([printable_record(r) for r in records])


def dumps(obj: Any, indent: bool = False) -> bytes:
    """One document; `indent` for files people read (meta.json)."""
    if orjson:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0)
    return json.dumps(obj, ensure_ascii=False, indent=2 if indent else None,
                      separators=None if indent else (",", ":")).encode()
