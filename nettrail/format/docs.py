"""The field tables of docs/format.md, generated from the descriptions: each
table stands between `<!-- fields: NAME -->` and `<!-- /fields -->`, and a
test keeps the file equal to what this module writes.

Rewrite them after changing a description:
    python -P -m nettrail.format.docs docs/format.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from nettrail.format import LOGS, PROBE_OPTIONS, PROBES, meta
from nettrail.format.fields import field_table
from nettrail.format.log import CONNECTION, IDENTITY

MARKED = re.compile(r"(<!-- fields: (\S+) -->\n).*?(<!-- /fields -->)", re.S)


def tables() -> dict[str, str]:
    out = {"identity": field_table(IDENTITY), "connection": field_table(CONNECTION),
           "meta": field_table(meta.fields(PROBES, tuple(PROBE_OPTIONS)))}
    identity = {f.name for f in IDENTITY}
    for probe, log in LOGS.items():
        out[probe] = field_table(log.own_fields, log.doc_rows)
        if log.summary:
            out[f"{probe}_summary"] = field_table(tuple(
                f for f in log.summary.fields if f.name not in identity))
    return out


def rewrite(text: str) -> str:
    generated = tables()
    return MARKED.sub(lambda m: m[1] + generated[m[2]] + m[3], text)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_text(rewrite(path.read_text()))
