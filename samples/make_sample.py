"""Produce samples/capture (a real capture of a scripted workload) and its
screenshots samples/report.png (1280 px wide) and samples/report-phone.png (390 px). Run as root from the repository: sudo .venv/bin/python samples/make_sample.py

Two network namespaces joined by a veth pair stand in for a client host and a
server host (10.77.0.1 and 10.77.0.2). The server host runs a DNS server
(tests/tools/dnsserver.py: slow.* answered after 300 ms, missing.* NXDOMAIN) and
a file server; the client host downloads a backup, uploads one, opens a burst
of short sessions and looks names up. nettrail captures it all from the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("samples/capture")
CLIENT, SERVER = "nt-sample-cli", "nt-sample-srv"
CLIENT_IP, SERVER_IP = "10.77.0.1", "10.77.0.2"
WORKLOAD = str(ROOT / "samples" / "workload.py")
TITLE = "Sample: backup traffic, a session burst and slow DNS"
NOTE = "Scripted workload from samples/make_sample.py (two network namespaces on one host)."


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def make_hosts() -> None:
    for ns in (CLIENT, SERVER):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", "nt-sample-c", "netns", CLIENT, "type", "veth", "peer", "name",
       "nt-sample-s", "netns", SERVER)
    for ns, dev, ip in ((CLIENT, "nt-sample-c", CLIENT_IP), (SERVER, "nt-sample-s", SERVER_IP)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
    etc = Path("/etc/netns") / CLIENT
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {SERVER_IP}\noptions timeout:2 attempts:1\n")


def remove_hosts() -> None:
    for ns in (CLIENT, SERVER):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    shutil.rmtree(Path("/etc/netns") / CLIENT, ignore_errors=True)


def named(bindir: Path, name: str) -> str:
    """A python under another name, so the process's comm says what it is."""
    link = bindir / name
    link.symlink_to(os.path.realpath(sys.executable))
    return str(link)


def in_ns(ns: str, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE,
                            text=True)


SHOTS = {"report.png": (1280, 2400), "report-phone.png": (390, 2400)}


def screenshot(report: Path, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--window-size={width},{height}", f"--screenshot={png}",
                        report.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    os.chdir(ROOT)
    shutil.rmtree(OUT, ignore_errors=True)
    make_hosts()
    servers: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as bindir_name:
            bindir = Path(bindir_name)
            os.chmod(bindir, 0o755)
            dns = in_ns(SERVER, named(bindir, "dns-server"), str(ROOT / "tests/tools/dnsserver.py"),
                        SERVER_IP, SERVER_IP)
            files = in_ns(SERVER, named(bindir, "file-server"), WORKLOAD, "serve", SERVER_IP)
            servers += [dns, files]
            assert dns.stdout.readline().strip() == "ready"
            assert files.stdout.readline().strip() == "ready"
            capture = subprocess.Popen(
                [sys.executable, "-P", "-m", "nettrail", "capture", "1", "8", "--probes", "+wire",
                 "-o", str(OUT), "--title", TITLE, "--note", NOTE],
                stderr=subprocess.PIPE, text=True)
            assert "capturing" in capture.stderr.readline()
            time.sleep(0.5)
            clients = [
                in_ns(CLIENT, named(bindir, "backup-agent"), WORKLOAD, "download",
                      "backup.corp.test"),
                in_ns(CLIENT, named(bindir, "uploader"), WORKLOAD, "upload", "backup.corp.test"),
                in_ns(CLIENT, named(bindir, "healthcheck"), WORKLOAD, "burst", "echo.corp.test",
                      "400"),
                in_ns(CLIENT, named(bindir, "api-client"), WORKLOAD, "lookups",
                      "slow.api.corp.test", "backup.corp.test", "missing.cdn.corp.test",
                      "slow.api.corp.test", "echo.corp.test", "slow.api.corp.test",
                      "missing.cdn.corp.test", "backup.corp.test"),
            ]
            for client in clients:
                client.wait(timeout=60)
            capture.wait(timeout=60)
            print(capture.stderr.read(), end="")
    finally:
        for server in servers:
            server.kill()
        remove_hosts()
    for path in OUT.iterdir():
        path.chmod(0o644)
    for name, (width, height) in SHOTS.items():
        screenshot(OUT / "report.html", ROOT / "samples" / name, width, height)
    print(f"wrote {OUT} and samples/{', samples/'.join(SHOTS)}")


if __name__ == "__main__":
    main()
