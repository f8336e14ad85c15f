"""capture/events.py mirrors bpf/nettrail.h field for field."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import pytest

from nettrail.capture.events import MIRRORS
from helpers import ROOT


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[int]]:
    binary = tmp_path_factory.mktemp("layout") / "layout"
    subprocess.run(["cc", "-I", str(ROOT / "bpf"), str(Path(__file__).with_name("layout.c")),
                    "-o", str(binary)], check=True)
    return json.loads(subprocess.run([binary], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.mark.parametrize("struct", sorted(MIRRORS))
def test_python_mirror_matches_c_layout(c_layout: dict, struct: str) -> None:
    mirror = MIRRORS[struct]
    assert ctypes.sizeof(mirror) == c_layout[struct][1]
    fields = {k.split(".", 1)[1]: v for k, v in c_layout.items() if k.startswith(struct + ".")}
    assert fields
    for name, (offset, size) in fields.items():
        descriptor = getattr(mirror, name)
        assert (descriptor.offset, descriptor.size) == (offset, size), f"{struct}.{name}"
