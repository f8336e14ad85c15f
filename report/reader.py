"""Read a capture directory (docs/format.md): meta.json strictly, the logs
tolerantly. A corrupt or truncated line, or a missing log, becomes a warning
naming the file and line; the report is still made from everything else."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nettrail import jsonio
from nettrail.errors import BadCapture
from nettrail.logformat import FORMAT, LOG_FILES, META, READABLE_FORMATS, reading_rules

MAX_WARNINGS_PER_FILE = 5


def _valid(record: object, schema: dict) -> bool:
    if not isinstance(record, dict):
        return False
    for k, types in schema.items():  # a loop, not all(genexpr): a third cheaper per line
        if not isinstance(record.get(k, ...), types):
            return False
    return True


@dataclass
class CaptureDir:
    path: Path
    meta: dict
    warnings: list[str] = field(default_factory=list)

    def records(self, probe: str) -> Iterator[dict]:
        """The probe's records, in file order; bad lines are skipped and noted."""
        name = LOG_FILES[probe]
        path = self.path / name
        if not path.exists():
            if self.meta.get("probes", {}).get(probe, {}).get("status") != "skipped":
                self.warnings.append(f"{name} is missing: no {probe} data")
            return
        schema, upgrade = reading_rules(self.meta["format"], probe, str(self.meta.get("host")))
        bad: list[int] = []
        try:
            f = path.open("rb")
        except OSError as exc:
            self.warnings.append(f"{name} cannot be read ({exc.strerror}): no {probe} data")
            return
        with f:
            for number, line in enumerate(f, 1):
                try:
                    record = jsonio.loads(line)
                except ValueError:
                    record = None
                if not _valid(record, schema):
                    bad.append(number)
                    continue
                yield upgrade(record) if upgrade else record
        if bad:
            shown = ", ".join(map(str, bad[:MAX_WARNINGS_PER_FILE]))
            more = f" and {len(bad) - MAX_WARNINGS_PER_FILE} more" if len(
                bad) > MAX_WARNINGS_PER_FILE else ""
            self.warnings.append(f"{name}: skipped {len(bad)} unreadable line(s): "
                                 f"line {shown}{more}")


def open_capture(path: Path) -> CaptureDir:
    meta_path = path / META
    if not path.is_dir():
        raise BadCapture(f"{path} is not a directory", "pass a capture directory")
    try:
        meta = jsonio.loads(meta_path.read_bytes())
    except FileNotFoundError:
        raise BadCapture(f"{path} is not a nettrail capture (no {META})",
                         "pass the directory nettrail capture printed") from None
    except (OSError, ValueError) as exc:
        raise BadCapture(f"cannot read {meta_path}: {exc}",
                         "the capture's meta.json is damaged") from None
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise BadCapture(f"{meta_path} has format {found!r}, this nettrail reads {FORMAT!r}",
                         "render it with the nettrail version that captured it")
    return CaptureDir(path, meta)
