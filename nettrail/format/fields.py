"""How the capture directory's contents are described: each field once (type,
unit, bound, vocabulary, meaning), and from that description the reader's
typed decoder (a msgspec Struct per log), the JSON Schemas in docs/schema/
and the field tables of docs/format.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Optional

import msgspec
from msgspec import Meta

MAX_TEXT = 4096           # comm, hostnames, addresses, error names
MAX_ADDRESSES = 1024      # per lookup
MAX_TS = 2.0 ** 33        # Unix seconds: the year 2242
MAX_MS = 1e12             # durations and latencies: 30 years
MAX_COUNTER = 2 ** 63 - 1  # counters: msgspec checks integer bounds within int64
MAX_PID = 2 ** 32 - 1
MAX_PORT = 65535

# A field named with a unit counts or lasts: never negative
UNITS = {"_bytes_per_s": "bytes/s", "_bytes": "bytes", "_segs": "segments",
         "_datagrams": "datagrams", "_packets": "packets", "_conns": "connections", "_drops": "drops",
         "_timeouts": "timeouts", "_us": "µs", "_ms": "ms", "_s": "s"}
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
              dict: "object"}


@dataclass(frozen=True)
class Field:
    name: str
    type: type                      # int, float (ints accepted), str, bool, list (of text)
    doc: str
    nullable: bool = False
    min: float | None = None        # inclusive bounds of a number
    max: float | None = None
    max_len: int | None = None      # text: characters; list: items
    vocabulary: tuple[str, ...] = ()  # documented values (the reader accepts others)
    required: bool = True           # False: added within the format, older files lack it
    decoded_as: Any = None          # a msgspec type instead of the one derived (objects)
    schema: dict | None = None      # a JSON Schema instead of the one derived

    @property
    def unit(self) -> str | None:
        return next((u for suffix, u in UNITS.items() if self.name.endswith(suffix)), None)


def text(name: str, doc: str, nullable: bool = False, vocabulary: tuple[str, ...] = (),
         max_len: int = MAX_TEXT, required: bool = True) -> Field:
    return Field(name, str, doc, nullable, max_len=max_len, vocabulary=vocabulary,
                 required=required)


def count(name: str, doc: str, nullable: bool = False, max: float = MAX_COUNTER,
          required: bool = True) -> Field:
    """A non-negative integer (bytes, segments, ids)."""
    return Field(name, int, doc, nullable, 0, max, required=required)


def number(name: str, doc: str, nullable: bool = False, max: float = MAX_MS,
           required: bool = True) -> Field:
    """A non-negative number (times, durations)."""
    return Field(name, float, doc, nullable, 0, max, required=required)


def flag(name: str, doc: str, required: bool = True) -> Field:
    return Field(name, bool, doc, required=required)


def texts(name: str, doc: str, max_len: int = MAX_ADDRESSES) -> Field:
    return Field(name, list, doc, max_len=max_len)


# -- the reader's decoder -------------------------------------------------------------

class Record(msgspec.Struct, kw_only=True, gc=False):
    """A log line as the reader hands it on: fields as attributes, and, for
    code written against the JSON shape, `r["pid"]` and `r.get("pid")`."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def as_dict(self) -> dict:
        return msgspec.structs.asdict(self)


def _bounded(f: Field) -> Any:
    if f.decoded_as is not None:
        return f.decoded_as
    if f.type is list:
        item = Annotated[str, Meta(max_length=MAX_TEXT)]
        return Annotated[list[item], Meta(max_length=f.max_len)]  # type: ignore[valid-type]
    if f.type is str:
        return Annotated[str, Meta(max_length=f.max_len)] if f.max_len else str
    if f.type is bool:
        return bool
    bounds = {}
    if f.min is not None:
        bounds["ge"] = f.min
    if f.max is not None:
        bounds["le"] = f.max
    return Annotated[f.type, Meta(**bounds)] if bounds else f.type


def struct_type(name: str, fields: tuple[Field, ...]) -> type[Record]:
    """A Struct that decodes and checks one line (unknown fields ignored)."""
    spec = []
    for f in fields:
        annotation = _bounded(f)
        if f.nullable or not f.required:
            annotation = Optional[annotation]
        spec.append((f.name, annotation) if f.required else (f.name, annotation, None))
    return msgspec.defstruct(name, spec, bases=(Record,), kw_only=True)


# -- JSON Schema (draft 2020-12) ------------------------------------------------------

def field_schema(f: Field) -> dict:
    if f.schema is not None:
        return f.schema
    types = [JSON_TYPES[f.type]] + (["null"] if f.nullable else [])
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if f.vocabulary:
        schema["enum"] = [*f.vocabulary, *([None] if f.nullable else [])]
    if f.type in (int, float):
        if f.min is not None:
            schema["minimum"] = f.min
        if f.max is not None:
            schema["maximum"] = f.max
    if f.type is list:
        schema["items"] = {"type": "string"}
    return schema


def object_schema(fields: tuple[Field, ...]) -> dict:
    properties = {f.name: field_schema(f) for f in fields}
    return {"type": "object", "properties": properties,
            "required": [f.name for f in fields if f.required]}


# -- docs/format.md -------------------------------------------------------------------

def field_table(fields: tuple[Field, ...], extra: tuple[tuple[str, str], ...] = ()) -> str:
    """A markdown table of fields and their meanings; `extra` rows say what
    shared fields mean in this log."""
    rows = ["| field | meaning |", "|---|---|"]
    rows += [f"| {heading} | {doc} |" for heading, doc in extra]
    rows += [f"| `{f.name}` | {f.doc} |" for f in fields]
    return "\n".join(rows) + "\n"
