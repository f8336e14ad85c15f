"""What a capture needs from this machine, each problem with its fix."""

from __future__ import annotations

import os
from pathlib import Path

from nettrail.errors import PrivilegeError, UnsupportedSystem

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def effective_caps() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def privilege_problem() -> PrivilegeError | None:
    caps = effective_caps()
    has = lambda cap: bool(caps & (1 << cap))  # noqa: E731
    if has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON)):
        return None
    who = "root without capabilities" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return PrivilegeError(f"nettrail needs root or CAP_BPF+CAP_PERFMON to load probes "
                          f"(running as {who})", "run it with sudo")


def btf_problem() -> UnsupportedSystem | None:
    if VMLINUX_BTF.exists():
        return None
    return UnsupportedSystem(f"this kernel has no BTF ({VMLINUX_BTF} is missing)",
                             "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or later)")


def require_capture_ok() -> None:
    """Raise the first problem that stops any probe from loading."""
    for problem in (privilege_problem(), btf_problem()):
        if problem:
            raise problem
