"""Build hook: compile the BPF probes (make bpf) before packaging them."""

import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithBpf(build_py):
    def run(self) -> None:
        subprocess.run(["make", "bpf"], check=True)
        super().run()


setup(cmdclass={"build_py": BuildWithBpf})
