"""Build hooks: compile the BPF probes into the wheel, tag the wheel for its
platform (the objects are built for one architecture), and put the kernel
type header in the sdist so that building from it needs only clang."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
CLI_DIR = "build/cli"
# generated from the argparse definition (nettrail.arguments.build_parser), where
# man, bash-completion and zsh look under the install prefix
CLI_FILES = {"share/man/man1": "nettrail.1", "share/bash-completion/completions": "nettrail",
             "share/zsh/site-functions": "_nettrail"}
GENERATE_CLI_FILES = """
import importlib.util, sys
from pathlib import Path
import nettrail  # ./nettrail (-c puts the working directory first on sys.path); its subpackages live in their own folders (pyproject.toml)
for sub in ("capture", "report", "schedule", "templates"):
    spec = importlib.util.spec_from_file_location(
        f"nettrail.{sub}", f"{sub}/__init__.py", submodule_search_locations=[sub])
    sys.modules[spec.name] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
import shtab
from argparse_manpage.manpage import Manpage
from nettrail.arguments import build_parser
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
page = Manpage(build_parser(), _data={
    "manual_title": "nettrail manual", "version": nettrail.VERSION,
    "description": "capture TCP bandwidth, sessions and DNS lookups with eBPF"})
(out / "nettrail.1").write_text(str(page))
(out / "nettrail").write_text(shtab.complete(build_parser(), shell="bash"))
(out / "_nettrail").write_text(shtab.complete(build_parser(), shell="zsh"))
"""


def generate_cli_files() -> None:
    """The man page and completions, from the parser itself, so that they
    cannot drift from it; in a child Python, with the source tree as the
    package (build_py has not run, or runs later)."""
    subprocess.run([sys.executable, "-c", GENERATE_CLI_FILES, CLI_DIR], check=True)


class BuildWithBpf(build_py):
    def run(self) -> None:
        super().run()
        generate_cli_files()  # before install_data copies them
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
        generate_cli_files()
        shutil.copytree(CLI_DIR, Path(base_dir) / CLI_DIR)


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: pure Python, but BPF objects for one architecture."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        return "py3", "none", super().get_tag()[2]


setup(cmdclass={"build_py": BuildWithBpf, "bdist_wheel": PlatformWheel,
                 "sdist": SdistWithTypes},
      data_files=[(where, [f"{CLI_DIR}/{name}"]) for where, name in CLI_FILES.items()])
