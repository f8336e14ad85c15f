"""JSON Schemas (draft 2020-12) of the capture directory, generated from the
format's descriptions so that the published files in docs/schema/ cannot
drift from what the capture writes and the report reads.

One schema per file of a capture (meta.json and each log, a log's schema
describing one line), for every format `nettrail report` reads. Unknown
fields are allowed: the format may add fields within a version, and log
shippers add their own.

Regenerate the published files after changing a description:
    python -P -m nettrail.format.schema docs/schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nettrail.format import FORMAT, FORMAT_V1, LOGS, META, PROBE_OPTIONS, PROBES, meta
from nettrail.format.fields import Field, field_schema

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _object(fields: tuple[Field, ...]) -> dict:
    properties = {f.name: {**field_schema(f), **({"description": f.doc} if f.doc else {})}
                  for f in fields}
    return {"type": "object", "properties": properties,
            "required": [f.name for f in fields if f.required]}


def log_schema(fmt: str, probe: str, summary: bool = False) -> dict:
    """One line of `probe`'s log (`summary`: its summary log) in format `fmt`."""
    log = LOGS[probe].summary if summary else LOGS[probe]
    assert log is not None
    return {"$schema": DIALECT, "title": f"{fmt} {log.file}: one line",
            "description": f"{log.doc} docs/format.md explains every field.",
            **_object(log.fields if fmt == FORMAT else log.v1_fields)}


def meta_schema(fmt: str) -> dict:
    older = tuple(p for p in PROBES if not LOGS[p].added_within)
    fields = meta.schema_fields(fmt == FORMAT_V1, older if fmt == FORMAT_V1 else PROBES,
                                tuple(PROBE_OPTIONS), older)
    schema = _object(fields)
    schema["properties"]["format"] = {"const": fmt}
    return {"$schema": DIALECT, "title": f"{fmt} {META}",
            "description": "The capture's metadata (docs/format.md).", **schema}


def schema_files() -> dict[str, dict]:
    """Every published schema by its path under docs/schema/: one folder per
    format, one `<file>.schema.json` per file of a capture."""
    files: dict[str, dict] = {}
    for fmt in (FORMAT, FORMAT_V1):
        folder = fmt.replace("/", "-")
        files[f"{folder}/{Path(META).stem}.schema.json"] = meta_schema(fmt)
        for probe, log in LOGS.items():
            if fmt == FORMAT_V1 and log.added_within:
                continue
            files[f"{folder}/{Path(log.file).stem}.schema.json"] = log_schema(fmt, probe)
            if log.summary and fmt == FORMAT:  # /1 had no summary logs
                files[f"{folder}/{Path(log.summary.file).stem}.schema.json"] = log_schema(
                    fmt, probe, summary=True)
    return files


def schema_for(fmt: str, name: str) -> dict:
    """The schema of the capture file `name` (meta.json, tcptop.jsonl, …) in `fmt`."""
    return schema_files()[f"{fmt.replace('/', '-')}/{Path(name).stem}.schema.json"]


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schema_files(directory: Path) -> None:
    for relative, schema in schema_files().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))


if __name__ == "__main__":
    write_schema_files(Path(sys.argv[1]))
