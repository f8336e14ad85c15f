"""Formatting numbers and untrusted text for people (exact values stay in the logs)."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def human_ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def printable(text: str) -> str:
    """Untrusted text safe for a terminal: control characters become '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)
