"""What ships: the wheel and sdist `make setup` built with `python -m build`,
installed with no compiler on PATH; the hardened systemd unit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import nettrail
from helpers import ROOT

DIST = ROOT / "dist"
UNIT = ROOT / "contrib" / "nettrail-schedule.service"
MAX_EXPOSURE = 3.0


def _one(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {DIST} (run make setup): {found}"
    return found[0]


@pytest.fixture(scope="module")
def wheel() -> Path:
    return _one(f"nettrail-{nettrail.VERSION}-*.whl")


@pytest.fixture(scope="module")
def sdist() -> Path:
    return _one(f"nettrail-{nettrail.VERSION}.tar.gz")


def test_wheel_is_one_package_tagged_for_its_platform(wheel: Path) -> None:
    platform_tag = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.name == f"nettrail-{nettrail.VERSION}-py3-none-{platform_tag}.whl"
    names = zipfile.ZipFile(wheel).namelist()
    packages = {re.sub(r"^nettrail-[^/]*\.data/(purelib|data)/", "", n).split("/")[0]
                for n in names}
    assert packages == {"nettrail", "share", f"nettrail-{nettrail.VERSION}.dist-info"}
    assert {n.split(".data/data/")[-1] for n in names if ".data/data/" in n} == {
        "share/man/man1/nettrail.1", "share/bash-completion/completions/nettrail",
        "share/zsh/site-functions/_nettrail"}
    for probe in ("bandwidth", "sessions", "dns"):
        assert any(n.endswith(f"nettrail/capture/bpf_objects/{probe}.bpf.o") for n in names)
    assert any(n.endswith("nettrail/templates/report.html.j2") for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_sdist_holds_what_a_wheel_is_built_from(sdist: Path) -> None:
    top = f"nettrail-{nettrail.VERSION}"
    names = set(tarfile.open(sdist).getnames())
    for needed in ("Makefile", "LICENSE", "setup.py", "pyproject.toml", "bpf/nettrail.h",
                   "bpf/bandwidth.bpf.c", "docs/format.md", "build/bpf/vmlinux.h",
                   "templates/report.html.j2", "nettrail/cli.py", "capture/window.py",
                   "build/cli/nettrail.1", "build/cli/nettrail", "build/cli/_nettrail"):
        assert f"{top}/{needed}" in names, needed


def test_sdist_builds_with_clang_alone(sdist: Path, tmp_path: Path) -> None:
    """The kernel's type header travels in the sdist: no bpftool needed."""
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    source = tmp_path / f"nettrail-{nettrail.VERSION}"
    env = {**os.environ, "BPFTOOL": "/bin/false"}
    subprocess.run([sys.executable, "-m", "build", "--wheel", "-o",
                    str(tmp_path / "out"), str(source)], env=env, check=True,
                   capture_output=True, timeout=300)
    assert len(list((tmp_path / "out").glob("*.whl"))) == 1


def test_fresh_venv_without_compiler_runs_the_wheel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True, timeout=600)
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path),
           "NETTRAIL_RUN_DIR": str(tmp_path / "run")}
    for tool in ("cc", "gcc", "clang", "make", "bpftool"):
        assert shutil.which(tool, path=env["PATH"]) is None

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([venv / "bin" / "nettrail", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    assert run("--version").stdout.strip() == f"nettrail {nettrail.VERSION}"
    if os.geteuid() == 0:
        check = run("check")
        assert check.returncode == 0, check.stdout + check.stderr
    capture = tmp_path / "sample"
    shutil.copytree(ROOT / "samples" / "capture", capture)
    report = run("report", str(capture))
    assert report.returncode == 0, report.stderr
    assert (capture / "report.html").stat().st_size > 10_000


def test_man_renders_the_page_of_the_installed_wheel(tmp_path: Path) -> None:
    """The page and completions come from the parser: every subcommand and
    option is in them."""
    share = Path(sys.prefix) / "share"
    env = {**os.environ, "MANPATH": str(share / "man"), "MANPAGER": "cat", "MANWIDTH": "100",
           "HOME": str(tmp_path)}
    page = subprocess.run(["man", "nettrail"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert page.returncode == 0, page.stderr
    for text in ("NETTRAIL(1)", "nettrail top", "nettrail show", "--pgrep", "--long"):
        assert text in page.stdout, text
    bash = share / "bash-completion" / "completions" / "nettrail"
    words = subprocess.run(["bash", "-c", f"source {bash}; complete -p nettrail"],
                           capture_output=True, text=True, timeout=60)
    assert words.returncode == 0 and "nettrail" in words.stdout, words.stderr
    assert "--pgrep" in bash.read_text() and "show" in bash.read_text()
    zsh = (share / "zsh" / "site-functions" / "_nettrail").read_text()
    assert zsh.startswith("#compdef nettrail") and "--noclear" in zsh


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_unit_is_hardened_and_valid(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    # verify checks that ExecStart exists: point it at the installed command
    nettrail_bin = Path(sys.executable).parent / "nettrail"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/nettrail", str(nettrail_bin)))
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True, timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)",
                            security.stdout)[1])
    assert score <= MAX_EXPOSURE, security.stdout
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr


# Packages only the tests use (a browser, firewalls, other libcs and
# resolvers, namespaces, a terminal multiplexer, man, a UDP sender): written out
# here, apart from the Makefile's own lists, so that moving one into the
# capture's is seen
TEST_ONLY_PACKAGES = {"chromium", "golang-go", "musl-tools", "nftables", "bind9-dnsutils",
                      "iproute2", "tmux", "man-db", "iperf3", "playwright", "pytest",
                      "ansible-core"}


def test_make_capture_installs_no_test_only_package() -> None:
    """What `make capture` would run (make -n: nothing is run, no root needed)."""
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "capture"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "MAKEFLAGS": ""})
    assert dry.returncode == 0, dry.stderr
    words = set(re.split(r"[\s;\"'()\[\]$]+", dry.stdout))
    assert {"clang", "libbpf-dev", "bpftool"} <= words  # the list is where we look
    assert not words & TEST_ONLY_PACKAGES and "[test]" not in dry.stdout
    # and `make test` does bring them
    dry_test = subprocess.run(["make", "-n", "-C", str(ROOT), "setup"], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "MAKEFLAGS": ""})
    assert {"chromium", "tmux", "nftables"} <= set(dry_test.stdout.split())
