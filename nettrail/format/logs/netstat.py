"""netstat.jsonl: per interval, one line per network namespace whose TCP or
UDP counters moved (added within /2)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from nettrail.format.fields import MAX_COUNTER, MAX_TEXT, Field, count, number
from nettrail.format.log import IDENTITY, Log, kind, no_headline, pick, timestamp
from nettrail.format.logs.bandwidth import MAX_INTERVAL_S

MAX_COUNTERS = 64

FIELDS = (
    kind("netstat"),
    timestamp("end of the interval (when the counters were read)"),
    count("interval", "1-based interval number (at most meta.json's `count`)"),
    number("interval_s", "the interval's real length in seconds", max=MAX_INTERVAL_S),
    *pick(IDENTITY, "host"),
    count("netns", "the network namespace (its inode number, as in `ls -l /proc/PID/ns/net`)"),
    Field("counters", dict, "what each counter that moved in the interval added, by its "
          "`nstat` name (`TcpExtListenOverflows`, `TcpExtListenDrops`, `TcpExtTCPTimeouts`, "
          "`TcpExtTCPSynRetrans`, `TcpRetransSegs`, `TcpOutSegs`, `TcpOutRsts`, "
          "`UdpRcvbufErrors`, ... docs/probes.md lists them); only those that moved",
          decoded_as=Annotated[dict[Annotated[str, msgspec.Meta(max_length=MAX_TEXT)],
                                    Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]],
                               msgspec.Meta(max_length=MAX_COUNTERS)],
          schema={"type": "object", "maxProperties": MAX_COUNTERS,
                  "additionalProperties": {"type": "integer", "minimum": 0}}),
)

LOG = Log("netstat", 7, "netstat.jsonl", "netstat",
          "One line per (interval, network namespace) whose TCP or UDP counters (those of "
          "`nstat`) moved in the interval. Absent from captures made before it was added.",
          FIELDS, pick(FIELDS, "ts"), line_budget=400_000, max_bytes=256 << 20,
          count=no_headline, added_within=True)
