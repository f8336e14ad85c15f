"""Formatting numbers and untrusted text for people (exact values stay in the logs)."""

from __future__ import annotations

SI_PREFIXES = ("", "k", "M", "G", "T")


def human_bytes(n: float) -> str:
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def human_rate(bits_per_s: float) -> str:
    """A network rate as people quote it: decimal prefixes of bit/s."""
    value, prefix = float(bits_per_s), ""
    for bigger in SI_PREFIXES[1:]:
        if abs(value) < 1000:
            break
        value, prefix = value / 1000, bigger
    return f"{value:.0f} bit/s" if not prefix else f"{value:.3g} {prefix}bit/s"


def bytes_rate(n_bytes: float, seconds: float) -> str:
    return human_rate(8 * n_bytes / seconds) if seconds > 0 else "–"


def human_ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def many(n: int, noun: str) -> str:
    """`n` of a regular noun: "1 lookup", "2 lookups"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def printable(text: object) -> str:
    """The one sanitiser for text from other processes (names, hostnames,
    paths) before it reaches a terminal, a log or a chart label: control
    characters (newlines and escape sequences included), bidi overrides and
    isolates, other invisible format characters, lone surrogates (undecodable
    bytes) and separators other than the space are shown escaped (\\x1b,
    \\u202e), so nothing can move the cursor, forge a line or reorder text."""
    text = str(text)
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)



def printable_record(record: dict) -> dict:
    """A JSON object with printable() applied to every string in it (keys
    included): what the logs and meta.json hold, so that `cat` or `grep` of
    a log in a terminal is as safe as nettrail's own output."""
    return {printable(k): _printable_json(v) for k, v in record.items()}


def _printable_json(value: object) -> object:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return printable_record(value)
    if isinstance(value, list):
        return [_printable_json(v) for v in value]
    return value
