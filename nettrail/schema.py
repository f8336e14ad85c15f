"""JSON Schemas (draft 2020-12) of the capture directory, generated from the
format contract in nettrail.logformat so that the published files in
docs/schema/ cannot drift from what the capture writes and the report reads.

One schema per file of a capture (meta.json and each log, a log's schema
describing one line), for every format `nettrail report` reads. Unknown
fields are allowed: the format may add fields within a version, and log
shippers add their own.

Regenerate the published files after changing logformat.py:
    python -P -m nettrail.schema docs/schema
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path

from nettrail.headline import Headline
from nettrail.logformat import (DNS_SOURCES, FORMAT, FORMAT_V1, KINDS, LOG_FILES, META,
                                PROBE_OPTIONS, PROBES, RESOLVED_BY, SCHEMAS, SESSION_ENDS,
                                SESSION_STATES, SIDES, V1_SCHEMAS, Types)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
              dict: "object", type(None): "null"}

# Fields whose values come from a fixed vocabulary (docs/format.md)
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "family": ("ipv4", "ipv6"), "side": SIDES, "state": SESSION_STATES, "end": SESSION_ENDS,
    "source": DNS_SOURCES, "resolved_by": RESOLVED_BY,
}
PORT_FIELDS = ("lport", "rport")
# Counts and durations are never negative: the fields named with a unit
UNIT_SUFFIXES = ("_bytes", "_segs", "_us", "_ms", "_s")

PROBE_STATUSES = ("ok", "failed", "skipped")
TRIGGERS = ("manual", "scheduled", "triggered")


def _type(types: Types) -> dict:
    """{"type": ...} for a field's accepted Python types (int and float: number)."""
    names = list(dict.fromkeys(JSON_TYPES[t] for t in (
        types if isinstance(types, tuple) else (types,))))
    if "number" in names and "integer" in names:
        names.remove("integer")
    return {"type": names[0] if len(names) == 1 else names}


def _field(name: str, types: Types) -> dict:
    schema = _type(types)
    nullable = isinstance(types, tuple) and type(None) in types
    if name in VOCABULARIES:
        schema["enum"] = [*VOCABULARIES[name], *([None] if nullable else [])]
    elif name in PORT_FIELDS:
        schema.update(minimum=0, maximum=65535)
    elif name.endswith(UNIT_SUFFIXES):
        schema["minimum"] = 0
    if name == "addresses":
        schema["items"] = {"type": "string"}
    return schema


def _object(properties: dict[str, dict], required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


def log_schema(fmt: str, probe: str) -> dict:
    """One line of `probe`'s log in format `fmt`: every field required (the
    writer always writes them all, null where unknown)."""
    fields = (SCHEMAS if fmt == FORMAT else V1_SCHEMAS)[probe]
    properties = {name: _field(name, types) for name, types in fields.items()}
    if "kind" in properties:
        properties["kind"] = {"const": KINDS[probe]}
    return {"$schema": DIALECT, "title": f"{fmt} {LOG_FILES[probe]}: one line",
            "description": f"One JSON object per line of {LOG_FILES[probe]} "
                           "(docs/format.md explains every field).",
            **_object(properties)}


def _nullable(json_type: str) -> dict:
    return {"type": [json_type, "null"]}


def _probe_status() -> dict:
    # dns also lists the libcs it probed (`libcs`): an extra field, not required
    return _object({"status": {"enum": list(PROBE_STATUSES)}, "hook": _nullable("string"),
                    "error": _nullable("string")})


def _summary() -> dict:
    """The headline numbers, as nettrail.headline.Headline stores them."""
    return _object({name: _field(name, typing.get_args(hint) or hint)
                    for name, hint in typing.get_type_hints(Headline).items()})


def meta_schema(fmt: str) -> dict:
    """meta.json in format `fmt` (/2 added `summary`)."""
    per_probe = {"type": "object", "required": list(PROBES)}
    properties = {
        "format": {"const": fmt}, "version": {"type": "string"}, "host": {"type": "string"},
        "kernel": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {**_nullable("string"), "format": "date-time"},
        "interval_s": {"type": "number", "exclusiveMinimum": 0},
        "count": {"type": "integer", "minimum": 1},
        "intervals_done": {"type": "integer", "minimum": 0},
        "interrupted": {"type": "boolean"}, "trigger": {"enum": list(TRIGGERS)},
        "filters": _object({"pids": {"type": "array", "items": {"type": "integer"}},
                            "probes": {"type": "array",
                                       "items": {"enum": [*PROBES, *PROBE_OPTIONS]}}}),
        "probes": {**per_probe, "additionalProperties": _probe_status()},
        "lost_events": {**per_probe,
                        "additionalProperties": {"type": "integer", "minimum": 0}},
        "summary": _summary(),
        "title": _nullable("string"), "note": _nullable("string"),
    }
    if fmt == FORMAT_V1:
        del properties["summary"]
    return {"$schema": DIALECT, "title": f"{fmt} {META}",
            "description": "The capture's metadata (docs/format.md).", **_object(properties)}


def schema_files() -> dict[str, dict]:
    """Every published schema by its path under docs/schema/: one folder per
    format, one `<file>.schema.json` per file of a capture."""
    files: dict[str, dict] = {}
    for fmt in (FORMAT, FORMAT_V1):
        folder = fmt.replace("/", "-")
        files[f"{folder}/{Path(META).stem}.schema.json"] = meta_schema(fmt)
        for probe in PROBES:
            files[f"{folder}/{Path(LOG_FILES[probe]).stem}.schema.json"] = log_schema(fmt, probe)
    return files


def schema_for(fmt: str, name: str) -> dict:
    """The schema of the capture file `name` (meta.json, tcptop.jsonl, …) in `fmt`."""
    return schema_files()[f"{fmt.replace('/', '-')}/{Path(name).stem}.schema.json"]


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2) + "\n"


def write_schema_files(directory: Path) -> None:
    for relative, schema in schema_files().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))


if __name__ == "__main__":
    write_schema_files(Path(sys.argv[1]))
