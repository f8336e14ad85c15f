"""issue 23, item 1: logs another user wrote cannot push the report's memory
past its bound. As uid 65534 they make a capture whose log is a 64 GB sparse
file without a newline (it costs them no disk), or holds a 1 GB line; root
renders it elsewhere (`-o`, as docs/security.md recommends) under a 1 GiB
address-space limit: the report is made, the bad line counted, where reading
stopped said."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nettrail.format import DNS, SESSIONS
from helpers import NETTRAIL, ROOT

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
FIXTURE = Path(__file__).parent / "data" / "capture_v2"
MEMORY_LIMIT = 1 << 30


@pytest.fixture
def their_capture() -> Path:
    """A copy of the fixture capture in a directory uid 65534 owns."""
    if os.geteuid() != 0:
        pytest.skip("plays another user against root: needs root")
    shared = Path(tempfile.mkdtemp(prefix="nettrail-logs-"))
    shared.chmod(0o755)
    capture = shared / "capture"
    shutil.copytree(FIXTURE, capture)
    for path in (capture, *capture.iterdir()):
        os.chown(path, NOBODY, NOBODY)
    yield capture
    shutil.rmtree(shared)


def as_nobody(*cmd: str) -> None:
    subprocess.run([*AS_NOBODY, *cmd], check=True, timeout=30)


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def report_elsewhere(capture: Path, out: Path) -> str:
    result = subprocess.run([*NETTRAIL, "report", str(capture), "-o", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, preexec_fn=limited)
    assert result.returncode == 0, result.stderr
    return out.read_text()


def test_a_sparse_log_without_newline_is_skipped_not_held(their_capture: Path,
                                                          tmp_path: Path) -> None:
    (their_capture / DNS).unlink()
    as_nobody("truncate", "-s", "64G", str(their_capture / DNS))
    page = report_elsewhere(their_capture, tmp_path / "report.html")
    assert "dns.jsonl: skipped 1 unreadable line(s): line 1<" in page
    assert "dns.jsonl: only its first 1,024 MiB were read" in page
    assert "TCP sessions" in page


def test_a_gigabyte_line_is_skipped_and_the_lines_after_it_read(their_capture: Path,
                                                                tmp_path: Path) -> None:
    log = their_capture / SESSIONS
    lines = log.read_bytes().splitlines(keepends=True)
    with log.open("wb") as f:  # a 1 GB hole (zeros, no newline), then the real lines
        f.write(lines[0])
        f.seek(f.tell() + (1 << 30))
        f.write(b"\n" + b"".join(lines[1:]))
    page = report_elsewhere(their_capture, tmp_path / "report.html")
    assert "tcplife.jsonl: skipped 1 unreadable line(s): line 2" in page
    assert f'data-headline="sessions" data-v="{len(lines)}"' in page
