"""Build hooks: compile the BPF probes into the wheel, tag the wheel for its
platform (the objects are built for one architecture), and put the kernel
type header in the sdist so that building from it needs only clang."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:  # setuptools >= 70.1 carries it; older ones take it from wheel
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

OBJECTS = Path("build/bpf-objects")
VMLINUX_H = "build/bpf/vmlinux.h"  # CO-RE: any recent kernel's types will do


class BuildWithBpf(build_py):
    def run(self) -> None:
        super().run()
        subprocess.run(["make", "bpf", f"OUT={OBJECTS}"], check=True)
        target = Path(self.build_lib) / "nettrail" / "capture" / "bpf_objects"
        target.mkdir(parents=True, exist_ok=True)
        for obj in sorted(OBJECTS.glob("*.bpf.o")):
            shutil.copy2(obj, target / obj.name)


class SdistWithTypes(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        subprocess.run(["make", VMLINUX_H], check=True)
        target = Path(base_dir) / VMLINUX_H  # sdist leaves build/ out by itself
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(VMLINUX_H, target)


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: pure Python, but BPF objects for one architecture."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        return "py3", "none", super().get_tag()[2]


setup(cmdclass={"build_py": BuildWithBpf, "bdist_wheel": PlatformWheel,
                 "sdist": SdistWithTypes})
