#!/usr/bin/env python3
"""Run one command as root inside Debian's stock kernels, booted in qemu.

    python3 vm/run.py --kernel 6.1 [--kernel 6.12] [--cwd DIR] [--env K=V] -- CMD ARGS...

Each --kernel is a series ("6.1", "6.12": the newest linux-image-<series>.*-amd64
package that apt knows) or an exact release ("6.1.0-56-amd64"). The package is
fetched with `apt-get download` and unpacked under ~/.cache/nettrail-vm/<release>/
(never installed: the host's kernel and boot files are untouched). The VM sees
the host's / read-only over 9p under a tmpfs overlay, has no network device,
and powers off after the command. The command's stdout and stderr stream back
to ours; we exit with its exit status (the first non-zero one over several
kernels), or with 125 and one line on stderr when the harness itself fails.
Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

VM_DIR = Path(__file__).resolve().parent
STAGE1 = VM_DIR / "initramfs-init.sh"
STAGE2 = VM_DIR / "init.sh"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nettrail-vm"
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
# What the initramfs must load to reach the root: virtio PCI, 9p over virtio,
# overlay. Their dependencies come from modules.dep; built-in ones are skipped.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# Host tools the harness runs, and the Debian package that has each.
HOST_TOOLS = {QEMU: "qemu-system-x86", "depmod": "kmod", "dpkg-deb": "dpkg",
              "apt-get": "apt", "apt-cache": "apt"}
HARNESS_FAILED = 125
POLL_SECONDS = 0.1


class VmError(Exception):
    """A harness failure, told as one line."""


@dataclass(frozen=True)
class Kernel:
    """An unpacked linux-image package in the cache."""
    release: str
    root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release


@dataclass(frozen=True)
class Outcome:
    """What one boot gave: the command's exit status and the times measured."""
    status: int
    boot_seconds: float
    total_seconds: float


# ---------------------------------------------------------------- kernels

def version_key(release: str) -> tuple[int, ...]:
    """Orders releases numerically: 6.1.0-9 < 6.1.0-56, 6.12.9 < 6.12.117."""
    return tuple(int(n) for n in re.findall(r"\d+", release))


def is_series(spec: str) -> bool:
    """'6.1' is a series to resolve; '6.1.0-56-amd64' is an exact release."""
    return re.fullmatch(r"\d+\.\d+", spec) is not None


def release_in_series(release: str, series: str) -> bool:
    """The plain amd64 flavour only: cloud-amd64 has no 9p, rt is another kernel."""
    return (release.startswith(series + ".") and release.endswith("-amd64")
            and not release.endswith(("-cloud-amd64", "-rt-amd64")))


def apt_releases(series: str) -> list[str]:
    """Releases of a series that apt's package lists offer (no network)."""
    pattern = "^linux-image-" + re.escape(series) + r"\."
    out = subprocess.run(["apt-cache", "search", "--names-only", pattern],
                         capture_output=True, text=True, check=False).stdout
    names = (line.split(" - ", 1)[0].strip() for line in out.splitlines())
    releases = (n.removeprefix("linux-image-") for n in names)
    return [r for r in releases if release_in_series(r, series)]


def cached_releases(series: str) -> list[str]:
    """Releases already unpacked, so a series resolves offline too."""
    if not CACHE.is_dir():
        return []
    return [p.name for p in CACHE.iterdir()
            if release_in_series(p.name, series) and Kernel(p.name, p).vmlinuz.is_file()]


def apt_update() -> None:
    """Refresh apt's lists once, for a package that is missing or gone stale."""
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)


def resolve(spec: str) -> str:
    """A series to the newest release that apt or the cache has."""
    if not is_series(spec):
        return spec
    found = apt_releases(spec) or cached_releases(spec)
    if not found:
        apt_update()
        found = apt_releases(spec)
    if not found:
        raise VmError(f"kernel {spec}: no linux-image-{spec}.*-amd64 package in apt's "
                      "lists (apt-cache search after apt-get update found none)")
    return max(found + cached_releases(spec), key=version_key)


def download(release: str, into: Path) -> Path:
    """apt-get download the signed image package (vmlinuz + modules)."""
    package = f"linux-image-{release}"
    for attempt in range(2):
        done = subprocess.run(["apt-get", "download", "-qq", package], cwd=into,
                              capture_output=True, text=True, check=False)
        debs = list(into.glob(f"{package}_*.deb"))
        if done.returncode == 0 and debs:
            return debs[0]
        if attempt == 0:
            apt_update()  # the lists may name a version the archive dropped
    errors = [line for line in done.stderr.splitlines() if line.startswith("E:")] or ["no .deb"]
    raise VmError(f"kernel {release}: cannot fetch {package}: {errors[-1]}")


def unpack(deb: Path, root: Path, release: str) -> None:
    """dpkg-deb -x (no maintainer scripts run) and depmod, which the package
    leaves to its postinst, so modprobe works inside the VM."""
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    usr_modules = root / "usr" / "lib" / "modules" / release
    if usr_modules.is_dir() and not (root / "lib" / "modules" / release).exists():
        (root / "lib" / "modules").mkdir(parents=True, exist_ok=True)
        usr_modules.rename(root / "lib" / "modules" / release)
    subprocess.run(["depmod", "-b", str(root), release], check=True)


def fetch(release: str) -> Kernel:
    """The release from the cache, or downloaded and unpacked into it once.
    The tree is built beside the cache entry and renamed into place, so a
    half-done fetch is never taken for a cached kernel."""
    kernel = Kernel(release, CACHE / release)
    if kernel.vmlinuz.is_file() and (kernel.modules / "modules.dep").is_file():
        return kernel
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{release}.", dir=CACHE))
    try:
        deb = download(release, work)
        unpack(deb, work / "root", release)
        if not Kernel(release, work / "root").vmlinuz.is_file():
            raise VmError(f"kernel {release}: the package has no boot/vmlinuz-{release}")
        try:
            (work / "root").rename(kernel.root)
        except OSError:
            if not kernel.vmlinuz.is_file():  # not a concurrent fetch that won
                raise VmError(f"kernel {release}: {kernel.root} is in the way; remove it") from None
    except subprocess.CalledProcessError as e:
        raise VmError(f"kernel {release}: unpacking failed: {shlex.join(e.cmd)}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return kernel


# ---------------------------------------------------------------- initramfs

def read_modules_dep(modules: Path) -> dict[str, list[str]]:
    """modules.dep as {module name: [its path, then its dependencies' paths]}."""
    deps: dict[str, list[str]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[module_name(path)] = [path, *rest.split()]
    return deps


def module_name(path: str) -> str:
    """kernel/net/9p/9pnet_virtio.ko.xz -> 9pnet_virtio (dashes as underscores)."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def load_order(modules: Path, wanted: Sequence[str]) -> list[str]:
    """The module files to insmod, every dependency before its user; modules
    built into this kernel (absent from modules.dep) are skipped."""
    deps = read_modules_dep(modules)
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[module_name(path)][1:]:
            visit(dep)
        order.append(path)

    for name in wanted:
        if name in deps:
            visit(deps[name][0])
    return order


def module_bytes(path: Path) -> bytes:
    """A module uncompressed: busybox insmod takes plain .ko files."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko"):
        return data
    raise VmError(f"{path.name}: compression not supported (only .ko, .ko.xz, .ko.gz)")


def pad4(length: int) -> bytes:
    """cpio "newc" aligns header+name and data to 4 bytes."""
    return b"\0" * (-length % 4)


@dataclass(frozen=True)
class Member:
    """One file, directory or device node of the initramfs."""
    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def cpio(members: Sequence[Member]) -> bytes:
    """A "newc" cpio archive, the format the kernel unpacks. Each member has
    its own inode number: the kernel hard-links members that share one."""
    out = []
    for ino, m in enumerate([*members, Member("TRAILER!!!", 0)], start=1):
        name = m.name.encode() + b"\0"
        fields = (ino, m.mode, 0, 0, 1, 0, len(m.data), 0, 0, *m.rdev, len(name), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += [header, name, pad4(len(header) + len(name)), m.data, pad4(len(m.data))]
    return b"".join(out)


def build_initramfs(kernel: Kernel, out: Path) -> None:
    """busybox-static, stage 1 and the boot modules, as an uncompressed cpio."""
    files = load_order(kernel.modules, BOOT_MODULES)
    names = [Path(f).name.split(".ko")[0] + ".ko" for f in files]
    dirs = ["bin", "dev", "proc", "sys", "modules", "lower", "rw", "newroot"]
    members = [Member(d, 0o040755) for d in dirs]
    members += [
        # /dev/console must exist before devtmpfs is mounted: init's stdio.
        Member("dev/console", 0o020600, rdev=(5, 1)),
        Member("bin/busybox", 0o100755, BUSYBOX.read_bytes()),
        Member("init", 0o100755, STAGE1.read_bytes()),
        Member("modules/order", 0o100644, "".join(n + "\n" for n in names).encode()),
    ]
    members += [Member(f"modules/{name}", 0o100644, module_bytes(kernel.modules / f))
                for f, name in zip(files, names, strict=True)]
    out.write_bytes(cpio(members))


# ---------------------------------------------------------------- the boot

def write_job(share: Path, argv: Sequence[str], cwd: str, env: dict[str, str]) -> None:
    """The job for stage 2: directory, environment, then exec of the argv, all
    shell-quoted so any argument survives unchanged."""
    lines = [f"cd -- {shlex.quote(cwd)} || exit 125"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines.append("exec " + shlex.join(argv))
    (share / "job.sh").write_text("\n".join(lines) + "\n")


def qemu_argv(kernel: Kernel, initramfs: Path, run_dir: Path, share: Path,
              args: argparse.Namespace) -> list[str]:
    """The qemu command line: stock kernel direct boot, no network device at
    all (-nodefaults, -nic none), serial console to a log file, the host's /
    read-only and the run directory writable, both over virtio-9p."""
    for path in (STAGE2, kernel.modules, share):
        if re.search(r"\s", str(path)):
            raise VmError(f"{path}: a path with white space cannot go on the kernel command line")
    cmdline = ["console=ttyS0", "quiet", "loglevel=4", "panic=-1", "mitigations=off",
               f"nettrail.init={STAGE2}", f"nettrail.modules={kernel.modules}", *args.append]
    accel = "tcg,thread=multi" if args.accel == "tcg" else args.accel
    return [QEMU, "-machine", "q35", "-accel", accel, "-cpu", "max",
            "-smp", str(args.smp), "-m", args.memory,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-nic", "none",
            "-serial", f"file:{run_dir / 'console.log'}",
            "-kernel", str(kernel.vmlinuz), "-initrd", str(initramfs),
            "-append", " ".join(cmdline),
            "-virtfs", "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={share},mount_tag=run,security_model=none"]


class Tail:
    """Copies what a file gains since the last call to one of our streams."""

    def __init__(self, path: Path, sink: BinaryIO) -> None:
        self.path, self.sink, self.offset = path, sink, 0

    def pump(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        if data:
            self.offset += len(data)
            self.sink.write(data)
            self.sink.flush()


def failure_reason(run_dir: Path, started: float | None) -> str:
    """Why no exit status came back: qemu's own complaint, else our init's
    line or a panic from the console, else when the VM stopped."""
    qemu_said = (run_dir / "qemu.log").read_text(errors="replace").strip().splitlines()
    console = run_dir / "console.log"
    text = console.read_text(errors="replace") if console.exists() else ""
    lines = [line.strip() for line in text.splitlines()]
    ours = [line for line in lines if "nettrail-init:" in line]
    panics = [line for line in lines if "Kernel panic" in line]
    stage = "started" if started is None else "finished"
    fallback = f"the VM stopped before the command {stage}"
    return ([line for line in qemu_said if "qemu" in line] or ours or panics or [fallback])[-1]


def keep_console(run_dir: Path, release: str) -> Path:
    """Keep the console log of a failed boot where the one line points."""
    kept = CACHE / f"console-{release}.log"
    CACHE.mkdir(parents=True, exist_ok=True)
    src = run_dir / "console.log"
    if src.exists():
        shutil.copyfile(src, kept)
    else:
        kept.write_text("")
    return kept


def watch(qemu: subprocess.Popen[bytes], share: Path, tails: list[Tail],
          args: argparse.Namespace, release: str) -> float | None:
    """Stream the output while qemu runs; kill it at the wall-clock or boot
    timeout. Returns the seconds from launch to the command's start."""
    start = time.monotonic()
    started: float | None = None
    while qemu.poll() is None:
        now = time.monotonic() - start
        if started is None and (share / "started").exists():
            started = now
        if now > args.timeout or (started is None and now > args.boot_timeout):
            qemu.kill()
            qemu.wait()
            what = "the command" if started is not None else "the boot"
            limit = args.timeout if started is not None else args.boot_timeout
            raise VmError(f"kernel {release}: {what} timed out after {limit:.0f} s; qemu killed")
        for tail in tails:
            tail.pump()
        time.sleep(POLL_SECONDS)
    for tail in tails:
        tail.pump()
    return started


def boot(kernel: Kernel, argv: Sequence[str], args: argparse.Namespace) -> Outcome:
    """One VM run in a fresh run directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nettrail-vm-") as tmp:
        run_dir = Path(tmp)
        share = run_dir / "share"
        share.mkdir()
        initramfs = run_dir / "initramfs.cpio"
        build_initramfs(kernel, initramfs)
        write_job(share, argv, args.cwd, dict(args.env))
        tails = [Tail(share / "stdout", sys.stdout.buffer), Tail(share / "stderr", sys.stderr.buffer)]
        if args.console:
            tails.append(Tail(run_dir / "console.log", sys.stderr.buffer))
        start = time.monotonic()
        with (run_dir / "qemu.log").open("wb") as log:
            qemu = subprocess.Popen(qemu_argv(kernel, initramfs, run_dir, share, args),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                started = watch(qemu, share, tails, args, kernel.release)
            except VmError as e:
                raise VmError(f"{e} (console: {keep_console(run_dir, kernel.release)})") from None
            finally:
                # Never leave a VM behind, also on ^C.
                if qemu.poll() is None:
                    qemu.kill()
                    qemu.wait()
        total = time.monotonic() - start
        status_file = share / "rc"
        if not status_file.exists():
            raise VmError(f"kernel {kernel.release}: {failure_reason(run_dir, started)} "
                          f"(console: {keep_console(run_dir, kernel.release)})")
        return Outcome(int(status_file.read_text().strip()), started or total, total)


# ---------------------------------------------------------------- the CLI

def check_host() -> None:
    """The host tools exist, else one line naming the packages to install."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    static = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "busybox-static"],
                            capture_output=True, text=True, check=False).stdout
    if "installed" not in static.split():
        missing.append("busybox-static")
    if missing:
        raise VmError(f"missing on the host: apt-get install {' '.join(missing)}")


def env_pair(text: str) -> tuple[str, str]:
    """--env KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text}")
    return key, value


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options before '--', the command to run inside after it."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="vm/run.py", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s --kernel SERIES [--kernel ...] [options] -- CMD ARGS...")
    p.add_argument("--kernel", action="append", required=True,
                   help="series (6.1, 6.12) or exact release (6.1.0-56-amd64); repeatable")
    p.add_argument("--cwd", default=os.getcwd(), help="directory to run the command in (default: ours)")
    p.add_argument("--env", action="append", type=env_pair, default=[], metavar="KEY=VALUE",
                   help="environment variable for the command; repeatable")
    p.add_argument("--timeout", type=float, default=1800.0, help="wall-clock limit per boot, s")
    p.add_argument("--boot-timeout", type=float, default=180.0, help="limit until the command starts, s")
    p.add_argument("--memory", default="4G")
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--accel", default="tcg", help="tcg (default, multi-threaded) or kvm")
    p.add_argument("--console", action="store_true", help="also stream the kernel console to stderr")
    p.add_argument("--append", action="append", default=[], metavar="PARAM",
                   help="extra kernel command-line parameter (e.g. loglevel=7); repeatable")
    args = p.parse_args(argv[:cut])
    command = argv[cut + 1:]
    if not command:
        p.error("no command after --")
    args.cwd = os.path.abspath(args.cwd)
    return args, command


def say(text: str) -> None:
    print(f"vm: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    args, command = parse_args(argv)
    # SIGTERM (a CI limit, kill) unwinds like ^C, so no qemu is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        check_host()
        # Every kernel fetched before any boots: a missing one fails at once.
        kernels = [fetch(resolve(spec)) for spec in args.kernel]
        worst = 0
        for kernel in kernels:
            say(f"{kernel.release}: booting ({args.accel}, {args.smp} CPUs, {args.memory})")
            outcome = boot(kernel, command, args)
            say(f"{kernel.release}: exit {outcome.status}; command started {outcome.boot_seconds:.1f} s "
                f"after launch; total {outcome.total_seconds:.1f} s")
            worst = worst or outcome.status
        return worst
    except VmError as e:
        say(str(e))
        return HARNESS_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
