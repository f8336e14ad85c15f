"""capture/events.py mirrors the structs of bpf/nettrail.h field for field,
checked against the BTF the compiled BPF objects carry (each probe keeps the
structs it hands to user space in its BTF: EVENT_TYPE in bpf/common.bpf.h).
Root-free: opening an object reads its ELF and BTF, loads nothing."""

from __future__ import annotations

import ctypes
import os
from importlib import resources
from pathlib import Path

import pytest

from nettrail.capture.events import MIRRORS
from nettrail.capture.libbpf import BpfObject
from helpers import ROOT

# the installed package's; from the source tree (an editable install), `make bpf`'s
SHIPPED = Path(str(resources.files("nettrail.capture").joinpath("bpf_objects")))
BUILT = ROOT / "build" / "bpf-objects"
OBJECTS = sorted(str(p) for p in (SHIPPED if SHIPPED.is_dir() else BUILT).glob("*.bpf.o"))
if not OBJECTS and os.environ.get("CI") != "true":
    pytest.skip("no BPF objects: run `make bpf` (the installed wheel ships them)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def layouts() -> dict[str, list[dict]]:
    """Per struct, its layout in every object that has it."""
    found: dict[str, list[dict]] = {name: [] for name in MIRRORS}
    for path in OBJECTS:
        obj = BpfObject(path)
        try:
            for name in MIRRORS:
                layout = obj.struct_layout(name)
                if layout is not None:
                    found[name].append(layout)
        finally:
            obj.close()
    return found


def test_every_probe_object_is_shipped() -> None:
    assert {p.rsplit("/", 1)[1] for p in OBJECTS} == {
        "bandwidth.bpf.o", "sessions.bpf.o", "dns.bpf.o", "dns_wire.bpf.o",
        "listeners.bpf.o", "udp.bpf.o", "drops.bpf.o", *(f"{p}.untrusted.bpf.o" for p in (
            "bandwidth", "sessions", "listeners", "udp"))}


@pytest.mark.parametrize("struct", sorted(MIRRORS))
def test_python_mirror_matches_the_objects_btf(layouts: dict, struct: str) -> None:
    mirror = MIRRORS[struct]
    expected = {"": (0, ctypes.sizeof(mirror))} | {
        name: (getattr(mirror, name).offset, getattr(mirror, name).size)
        for name, _ in mirror._fields_}
    assert layouts[struct], f"no BPF object carries struct {struct} in its BTF"
    for layout in layouts[struct]:
        assert layout == expected, struct
