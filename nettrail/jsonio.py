"""JSON for logs and caches: orjson when installed (several times faster on
the capture's write path), the standard library otherwise. Both write the
same documents: UTF-8, no spaces inside a line, one record per line."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by installs without the extra
    orjson = None


def loads(data: bytes | str) -> Any:
    """Parse one document; ValueError when it is not JSON."""
    return orjson.loads(data) if orjson else json.loads(data)


def dump_lines(records: list[dict]) -> bytes:
    """Records as JSON Lines, each ending in a newline."""
    if orjson:
        option = orjson.OPT_APPEND_NEWLINE
        return b"".join([orjson.dumps(r, option=option) for r in records])
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                   for r in records).encode()


def dumps(obj: Any, indent: bool = False) -> bytes:
    """One document; `indent` for files people read (meta.json)."""
    if orjson:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0)
    return json.dumps(obj, ensure_ascii=False, indent=2 if indent else None,
                      separators=None if indent else (",", ":")).encode()
