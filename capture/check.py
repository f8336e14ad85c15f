"""`nettrail check`: what this machine offers each probe, each problem with its fix."""

from __future__ import annotations

import json
import os
import platform
import socket
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from nettrail.capture import libbpf
from nettrail.capture.clock import Clock
from nettrail.capture.events import RecordContext
from nettrail.capture.libcs import find_libcs
from nettrail.capture.preflight import (TCP_NEEDS, TCP_OPTIONAL, VMLINUX_BTF, KernelNeed,
                                        btf_has, btf_problem, privilege_problem)
from nettrail.capture.window import start_probes
from nettrail.errors import NettrailError
from nettrail.format import PROBE_OPTIONS, PROBES
from nettrail.units import printable

MAX_COLUMNS = 100
MAX_NAME_WIDTH = 28  # the kernel needs' names (tp_btf/inet_sock_set_state) fit
MARK_WIDTH = 7   # "PROBLEM"


@dataclass
class Finding:
    what: str
    value: str
    ok: bool
    fix: str = ""


def _system() -> list[Finding]:
    findings = [Finding("kernel", f"{platform.release()} ({platform.machine()})", True)]
    btf = btf_problem()
    findings.append(Finding("BTF", str(VMLINUX_BTF) if not btf else btf.problem, not btf,
                            btf.fix if btf else ""))
    priv = privilege_problem()
    findings.append(Finding("privileges", "root" if not priv and os.geteuid() == 0 else
                            (priv.problem if priv else "CAP_BPF+CAP_PERFMON"), not priv,
                            priv.fix if priv else ""))
    try:
        lib = libbpf.lib()
        findings.append(Finding("libbpf", f"libbpf.so.1 ({lib.libbpf_major_version()}."
                                          f"{lib.libbpf_minor_version()})", True))
    except NettrailError as exc:
        findings.append(Finding("libbpf", exc.problem, False, exc.fix))
    libcs = find_libcs()
    findings.append(Finding("libcs", ", ".join(f"{c.path} (pid {c.pid})" for c in libcs)
                            or "none found", bool(libcs),
                            "" if libcs else "dns needs a process using libc"))
    return findings


def tcp_findings(has: Callable[[KernelNeed], bool]) -> list[Finding]:
    """What the bandwidth and sessions probes use from this kernel, and why."""
    return [Finding(need.what, f"{'found' if has(need) else 'missing'}: {need.why}",
                    has(need), "" if has(need) else f"needs Linux {need.since} or later")
            for need in TCP_NEEDS] + [
        Finding(need.what, f"found: {need.why}" if has(need) else
                f"missing (optional): no {need.why}; the probes run without it", True,
                "" if has(need) else f"Linux {need.since} or later has it")
        for need in TCP_OPTIONAL]


def _tcp_engine() -> list[Finding]:
    try:
        btf = libbpf.KernelBtf()
    except NettrailError as exc:
        return [Finding("kernel BTF", exc.problem, False, exc.fix)]
    try:
        return tcp_findings(btf_has(btf))
    finally:
        btf.close()


def _fix(error: str | None) -> str:
    if error and "needs CAP_" in error:
        return "run as root, or grant it (README: capabilities per probe)"
    return "run with --debug for libbpf's log"


def _probes() -> list[Finding]:
    """Start the probes (and their opt-in parts) for a moment, as a capture
    would, to learn their hooks."""
    ctx = RecordContext(Clock(), socket.gethostname())
    probes = start_probes(ctx, (*PROBES, *PROBE_OPTIONS), ())
    for probe in probes.values():
        probe.close()
    findings = [Finding(name, p.status.hook or p.status.error or "", p.status.status == "ok",
                        "" if p.status.status == "ok" else _fix(p.status.error))
                for name, p in probes.items()]
    findings += [Finding(f"{name} (less)", note, True, "grant it for the full view")
                 for name, p in probes.items() for note in p.status.detail.get("degraded", ())]
    for option, probe_name in PROBE_OPTIONS.items():
        detail = probes[probe_name].status.detail
        if probes[probe_name].status.status == "ok":
            error = detail.get(f"{option}_error")
            findings.append(Finding(f"{probe_name} +{option}", error or "can run", not error,
                                    _fix(error) if error else ""))
    return findings


def run_check() -> list[Finding]:
    findings = _system()
    if all(f.ok for f in findings[:4]):
        findings += _tcp_engine() + _probes()
    else:
        findings += [Finding(name, "not tried (fix the problems above)", False)
                     for name in PROBES]
    return findings


def check_lines(findings: list[Finding], columns: int = MAX_COLUMNS) -> list[str]:
    """The findings as aligned columns within min(columns, 100) (60 at
    least): what, ok or PROBLEM, the value wrapped under itself, the fix on
    lines of its own. A name too long for its column has a line to itself."""
    width = max(min(columns, MAX_COLUMNS), 60)
    name_width = min(max(len(printable(f.what)) for f in findings), MAX_NAME_WIDTH)
    indent = " " * (name_width + 1 + MARK_WIDTH + 1)
    lines = []
    for f in findings:
        # values name other processes' libraries: never raw to the terminal
        name = printable(f.what)
        if len(name) > name_width:
            lines.append(name)
            name = ""
        mark = "ok" if f.ok else "PROBLEM"
        body = textwrap.wrap(printable(f.value) or "-", width - len(indent),
                             break_on_hyphens=False, break_long_words=True)
        lines.append(f"{name:<{name_width}} {mark:<{MARK_WIDTH}} {body[0]}")
        lines += [indent + more for more in body[1:]]
        if f.fix:
            lines += textwrap.wrap(printable(f"-> {f.fix}"), width, initial_indent=indent,
                                   subsequent_indent=indent + "   ")
    return lines


def check_json(findings: list[Finding]) -> str:
    """`check --json`: one object, every finding with its fix, and whether a
    capture would have everything. ASCII only: it reaches terminals too."""
    return json.dumps({"ok": all(f.ok for f in findings),
                       "findings": [{"what": f.what, "ok": f.ok, "value": f.value,
                                     "fix": f.fix or None} for f in findings]})
