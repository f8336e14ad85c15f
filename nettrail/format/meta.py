"""meta.json: what was captured, how, and its headline numbers. Checked
strictly by the reader (a capture whose meta.json is damaged is refused)."""

from __future__ import annotations

import datetime as dt
import math
import typing
from typing import Annotated, Optional

import msgspec
from msgspec import Meta

from nettrail.format.logs.bandwidth import MAX_INTERVAL_S
from nettrail.format.fields import (MAX_PID, Field, count, flag, number, object_schema,
                                    struct_type, text)
from nettrail.headline import ADDED_LATER, Headline

FILE = "meta.json"
MAX_BYTES = 1 << 20
MAX_TEXT = 1 << 16
MAX_COUNT = 100_000
# the capture's nice value during the window unless --nice says otherwise:
# on a saturated host its threads get several times a default process's share
CAPTURE_NICE = -10
MIN_NICE, MAX_NICE = -20, 19
PROBE_STATUSES = ("ok", "failed", "skipped")
TRIGGERS = ("manual", "scheduled", "triggered")
# capture/loader.py and the dns probe count them
LOST_CAUSES = ("ringbuf_full", "map_full", "query_table_full", "query_share_used",
               "recursion_misses", "pass_rows_cut")


class ProbeStatus(msgspec.Struct):
    """probes.NAME: other fields (dns's libcs, wire, …) are the probe's own."""
    status: str
    hook: Optional[str] = None
    error: Optional[str] = None


class LineBudget(msgspec.Struct):
    """line_budgets.NAME: a log's per-interval line budget and what went past it."""
    interval_lines: Annotated[int, Meta(ge=0)]
    summarised: Annotated[int, Meta(ge=0)]
    summary_lines: Annotated[int, Meta(ge=0)]


class Filters(msgspec.Struct):
    pids: list[Annotated[int, Meta(ge=0, le=MAX_PID)]] = []
    probes: list[str] = []
    # capture --container/--pod/--namespace (added within /2)
    containers: list[Annotated[str, Meta(max_length=MAX_TEXT)]] = []
    pods: list[Annotated[str, Meta(max_length=MAX_TEXT)]] = []
    namespaces: list[Annotated[str, Meta(max_length=MAX_TEXT)]] = []


def _summary_field(name: str, hint: object) -> Field:
    types = [t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    kind = str if str in types else (float if float in types else int)
    doc = f"headline number `{name}`"
    field = (text(name, doc, nullable=True) if kind is str else
             number(name, doc, nullable=True) if kind is float else count(name, doc))
    return Field(**{**field.__dict__, "required": name not in ADDED_LATER})


SUMMARY = tuple(_summary_field(name, hint)
                for name, hint in typing.get_type_hints(Headline).items())
_SUMMARY_TYPE = struct_type("Summary", SUMMARY)


def _names(probes: tuple[str, ...]) -> dict:
    return {"type": "object", "required": list(probes)}


def fields(probes: tuple[str, ...], probe_options: tuple[str, ...],
           required: tuple[str, ...] | None = None) -> tuple[Field, ...]:
    """meta.json's fields, for a format with these probes (`required`: those
    every capture of it names, default all)."""
    required = probes if required is None else required
    status_schema = object_schema((text("status", "", vocabulary=PROBE_STATUSES),
                                   text("hook", "", nullable=True),
                                   text("error", "", nullable=True)))
    return (
        text("format", "`nettrail-capture/2` for this version of the format; `nettrail "
             "report` also reads `/1` (see Versioning) and refuses anything else"),
        text("version", "the nettrail version that captured", max_len=MAX_TEXT),
        text("host", "the capturing machine's hostname", max_len=MAX_TEXT),
        text("kernel", "the running kernel's release", max_len=MAX_TEXT),
        Field("started_at", str, "when the window started: ISO 8601, UTC",
              schema={"type": "string", "format": "date-time"}),
        Field("ended_at", str, "when it ended; `null` while the capture runs (or if it died)",
              nullable=True, schema={"type": ["string", "null"], "format": "date-time"}),
        Field("interval_s", float, "the window asked for: `count` intervals of `interval_s` "
              "seconds", min=0, max=MAX_INTERVAL_S,
              schema={"type": "number", "exclusiveMinimum": 0, "maximum": MAX_INTERVAL_S}),
        Field("count", int, "intervals asked for", min=1, max=MAX_COUNT),
        count("intervals_done", "complete intervals. An interrupted capture writes the partial "
              "interval's bandwidth as interval `intervals_done + 1`", max=MAX_COUNT),
        count("intervals_late", "intervals whose pass began late (more than a tenth of an "
              "interval after its end: the capture was busy) or was folded into the next "
              "interval's (its end went by while a pass ran); the window still ends on time. "
              "Captures made before it lack it", max=MAX_COUNT, required=False),
        flag("interrupted", "`true` if Ctrl-C / SIGTERM ended the window early. The capture "
             "is still complete and valid"),
        Field("nice", int, "the capture's nice value during the window (`--nice`, default "
              f"{CAPTURE_NICE}; the caller's when it may not raise its priority). Captures "
              "made before it lack it", min=MIN_NICE, max=MAX_NICE, required=False),
        text("trigger", "`manual` (nettrail capture), `scheduled` or `triggered` (nettrail "
             "schedule)", vocabulary=TRIGGERS),
        Field("filters", dict, "`pids`: the `-p` PIDs (empty: all processes); `probes`: the "
              "probes (and probe options) asked for; `containers`, `pods`, `namespaces`: "
              "`--container`, `--pod`, `--namespace` (empty: all; captures made before them "
              "lack them)", decoded_as=Filters,
              schema=object_schema((Field("pids", list, "", schema={
                  "type": "array", "items": {"type": "integer"}}),
                  Field("probes", list, "", schema={
                      "type": "array", "items": {"enum": [*probes, *probe_options]}}),
                  *(Field(name, list, "", required=False)
                    for name in ("containers", "pods", "namespaces"))))),
        Field("probes", dict, "per probe: `status` (`ok`, `failed`: could not load or attach, "
              "see `error`; `skipped`: not asked for), `hook` (the kernel hook it ran on, "
              "chosen at load time, best first), `hooks_failed` (where a better hook set failed "
              "first: each as `hook: why`), `error` (why it failed, or a problem it had "
              "while running), and what the probe adds of its own (below)",
              decoded_as=dict[str, ProbeStatus],
              schema={**_names(required), "additionalProperties": status_schema}),
        Field("lost_events", dict, "per probe: events the kernel side could not hand over "
              "(ring buffer full), could not track (map or socket storage full), or did not "
              "see (the probe's programs' `recursion_misses`). `0` means nothing was dropped",
              decoded_as=dict[str, Annotated[int, Meta(ge=0)]],
              schema={**_names(required),
                      "additionalProperties": {"type": "integer", "minimum": 0}}),
        Field("lost_events_by_cause", dict, "the same per probe and cause: `ringbuf_full`, "
              "`map_full`, `recursion_misses`, `pass_rows_cut` (rows of a pass over open files past its "
              "64 MiB bound; dns: its wire part added in). Captures made "
              "before it lack it (the metrics then say cause `unknown`)", required=False,
              decoded_as=dict[str, dict[str, Annotated[int, Meta(ge=0)]]],
              schema={"type": "object", "additionalProperties": {
                  "type": "object", "properties": {
                      c: {"type": "integer", "minimum": 0} for c in LOST_CAUSES}}}),
        Field("line_budgets", dict, "per log with a line budget (`sessions`): "
              "`interval_lines`, the lines per interval the capture writes at most "
              "(`--session-lines`); `summarised`, the records past it, counted in the log's "
              "summary log (`tcplife_summary.jsonl`) instead of written one line each; "
              "`summary_lines`, that log's lines. Captures made before it lack it (nothing "
              "was summarised)", required=False, decoded_as=dict[str, LineBudget],
              schema={"type": "object", "additionalProperties": object_schema(tuple(
                  count(name, "") for name in ("interval_lines", "summarised",
                                               "summary_lines")))}),
        Field("summary", dict, "the headline numbers (nettrail/headline.py), counted from the "
              "records as they were written; the report, the snapshot index and "
              "`--summary-json` show the same numbers", nullable=True, required=False,
              decoded_as=_SUMMARY_TYPE, schema=object_schema(SUMMARY)),
        text("title", "`--title` given to capture, used by the report", nullable=True,
             max_len=MAX_TEXT),
        text("note", "`--note` given to capture, used by the report", nullable=True,
             max_len=MAX_TEXT),
    )


def schema_fields(fmt_v1: bool, probes: tuple[str, ...], probe_options: tuple[str, ...],
                  required: tuple[str, ...] | None = None) -> tuple[Field, ...]:
    """/1 had no `summary` and no line budgets."""
    return tuple(f for f in fields(probes, probe_options, required)
                 if not (fmt_v1 and f.name in ("summary", "line_budgets")))


def _iso_time(text_: str) -> bool:
    try:
        when = dt.datetime.fromisoformat(text_.replace("Z", "+00:00"))
    except ValueError:
        return False
    return math.isfinite(when.timestamp())


def parse_time(text_: object) -> float | None:
    """An ISO 8601 time from meta.json as Unix seconds (None: not one)."""
    if not isinstance(text_, str) or not _iso_time(text_):
        return None
    return dt.datetime.fromisoformat(text_.replace("Z", "+00:00")).timestamp()


def problem(meta: object, shape: type) -> str | None:
    """What is wrong with a meta.json document (already parsed), or None."""
    if not isinstance(meta, dict):
        return "it is not a JSON object"
    try:
        msgspec.convert(meta, shape)  # checks the parsed document as it is
    except msgspec.ValidationError as exc:  # "Expected `int`, got `str` - at `$.count`"
        what, _, where = str(exc).partition(" - at ")
        return f"{where.strip('`').removeprefix('$.') or 'the document'}: {what[:1].lower()}{what[1:]}"
    checks = (
        (meta["interval_s"] > 0, f"interval_s: expected a number in (0, {MAX_INTERVAL_S:g}]"),
        (meta["intervals_done"] <= meta["count"], "intervals_done: expected 0..count"),
        (_iso_time(meta["started_at"]), "started_at: expected an ISO 8601 time"),
        (meta["ended_at"] is None or _iso_time(meta["ended_at"]),
         "ended_at: expected an ISO 8601 time"),
    )
    return next((why for ok, why in checks if not ok), None)


def shape(probes: tuple[str, ...], probe_options: tuple[str, ...]) -> type:
    """meta.json of either format (`summary` is optional), as problem() checks it."""
    return struct_type("Meta", fields(probes, probe_options))
