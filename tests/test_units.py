"""The systemd units in contrib/ as shipped: `systemd-analyze verify` with
nettrail installed where ExecStart says (a private mount namespace puts the
installed CLI at /usr/local/bin/nettrail, nothing on the host changes), their
command lines accepted by nettrail's own parser, one hardening block."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nettrail.arguments import build_parser
from helpers import ROOT

CONTRIB = ROOT / "contrib"
UNITS = ["nettrail-schedule.service", "nettrail-snapshot.service", "nettrail-snapshot.timer"]
EXEC_PATH = "/usr/local/bin/nettrail"
# a stand-in at ExecStart's path that runs the installed nettrail
STAND_IN = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -P -m nettrail "$@"\n'


def settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (CONTRIB / unit).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found.setdefault(key, []).append(value)
    return found


def test_systemd_analyze_verifies_the_units() -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (the systemd package)")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("puts nettrail at /usr/local/bin in a private mount namespace: needs root")
    script = (f"mount -t tmpfs nettrail-test /usr/local/bin && printf '%s' {shlex.quote(STAND_IN)}"
              f" > {EXEC_PATH} && chmod 755 {EXEC_PATH} && {EXEC_PATH} --version"
              f" && systemd-analyze verify {' '.join(str(CONTRIB / u) for u in UNITS)}")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("nettrail ") and not result.stderr, result.stderr


@pytest.mark.parametrize("unit", ["nettrail-schedule.service", "nettrail-snapshot.service"])
def test_exec_start_is_a_valid_nettrail_command(unit: str) -> None:
    (command,) = settings(unit)["ExecStart"]
    path, *args = shlex.split(command)
    assert path == EXEC_PATH
    parsed = build_parser().parse_args(args)
    assert parsed.command == "schedule" and parsed.keep == 96


def test_service_readiness_no_reload_and_one_hardening() -> None:
    service, oneshot = settings(UNITS[0]), settings(UNITS[1])
    assert service["Type"] == ["notify"] and "ExecReload" not in service
    assert oneshot["Type"] == ["oneshot"] and oneshot["SuccessExitStatus"] == ["7"]
    assert settings(UNITS[2])["OnCalendar"] == ["*:0/15"]

    def hardening(unit: str) -> str:
        text = (CONTRIB / unit).read_text()
        return text[text.index("# What the probes need"):text.index("SystemCallErrorNumber")]
    assert hardening(UNITS[0]) == hardening(UNITS[1])  # the two units stay alike
