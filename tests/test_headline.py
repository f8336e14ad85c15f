"""One definition of each headline number: meta.json's summary, the report
page and the snapshot index show the same numbers (root-free, over the
sample; test_schema.py does the same for a real capture and --summary-json)."""

from __future__ import annotations

from pathlib import Path

from helpers import ROOT, headline_everywhere


def test_sample_headline_is_the_same_everywhere(tmp_path: Path) -> None:
    shown = headline_everywhere(ROOT / "samples" / "capture", tmp_path)
    assert shown["page"] == shown["summary"]
    assert shown["index"] == shown["index summary"]
    assert shown["summary"]["lookups"] == 15 and shown["summary"]["literal_lookups"] == 402
