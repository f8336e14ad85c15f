"""An unprivileged process playing tricks on whoever reads its maps (issue 13).

fifo|symlink DIR [TARGET]: in a user namespace, chroot into DIR (its own
directory, prepared with DIR/lib/libc.so.6) and map /lib/libc.so.6. Its maps
line, read from the host, prints DIR/lib/libc.so.6, so /proc/PID/root plus
that path is DIR/DIR/lib/libc.so.6 on the host: leave a FIFO there, or an
absolute symlink to TARGET.
many DIR: map every DIR/*/libc.so.6 (each a file of its own).
Prints "ready" once the trick is in place, then waits for stdin to close."""

from __future__ import annotations

import ctypes
import glob
import mmap
import os
import sys

CLONE_NEWUSER = 0x10000000


def enter_own_root(root: str) -> None:
    """A user namespace where this user is root, then chroot (no privilege
    needed outside it)."""
    uid, gid = os.getuid(), os.getgid()
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER):
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                       ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    os.chroot(root)
    os.chdir("/")


def map_file(path: str) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)


def main() -> None:
    mode, directory = sys.argv[1], os.path.abspath(sys.argv[2])
    if mode == "many":
        kept = [map_file(p) for p in sorted(glob.glob(f"{directory}/*/libc.so.6"))]
    else:
        enter_own_root(directory)
        kept = [map_file("/lib/libc.so.6")]
        trap = f"{directory}/lib/libc.so.6"  # the host path, inside this root
        os.makedirs(os.path.dirname(trap), exist_ok=True)
        if mode == "fifo":
            os.mkfifo(trap)
        else:
            os.symlink(sys.argv[3], trap)
    print("ready", len(kept), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
