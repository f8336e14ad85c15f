"""Writing and reading files on a host where other users are hostile.

nettrail runs as root and writes into directories whose paths people type.
So every file is written through an open directory fd, into an unpredictable
O_EXCL|O_NOFOLLOW temporary, fchmod 0600, then renamed into place: no planted
symlink or pre-created file is ever opened. A capture directory is created
here (mkdir 0700) or, if it exists, accepted only when it is a real directory
(not a symlink) of the effective user that nobody else can write to. The
path to it is walked one directory fd at a time (open_dir): a symlink on the
way is followed only where nobody but root or this user could have put it.
Files are read the same way: no symlinks, never a FIFO or a device
(docs/security.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nettrail.errors import NettrailError, OutputError, PrivilegeError, UsageError

DIR_MODE = 0o700
FILE_MODE = 0o600
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
TEMP_ATTEMPTS = 10
MAX_LINKS = 40  # symlinks followed in one path, as the kernel's own limit
DEFAULT_FIX = "free disk space or write elsewhere with -o"


@contextlib.contextmanager
def writing(path: Path, fix: str = DEFAULT_FIX) -> Iterator[None]:
    """Turn an OSError while writing `path` into one clear OutputError."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", fix) from exc


def _trusted_uids() -> set[int]:
    return {0, os.geteuid()}


def _link_is_trusted(dir_fd: int, name: str) -> bool:
    """A symlink that nobody but root or this user made or can replace: its
    own owner is one of them, and so is its directory's, which others cannot
    write to (or, sticky like /tmp, cannot remove others' entries from)."""
    link = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    here = os.fstat(dir_fd)
    trusted = _trusted_uids()
    return (link.st_uid in trusted and here.st_uid in trusted
            and (not here.st_mode & 0o022 or bool(here.st_mode & stat.S_ISVTX)))


def open_dir(path: Path) -> int:
    """The directory `path`, opened one component at a time, each with
    O_NOFOLLOW|O_DIRECTORY from the fd of the one before (from "/", or the
    working directory): no component is looked up twice, and a symlink is
    followed only when _link_is_trusted (root's /var/run is; one another user
    planted is a UsageError). Missing, non-directory and forbidden components
    raise the usual OSError."""
    start = os.open("/" if path.is_absolute() else ".", DIR_FLAGS)
    return _walk(start, [part for part in path.parts if part != "/"], path, [MAX_LINKS])


def _walk(fd: int, parts: list[str], path: Path, links_left: list[int]) -> int:
    """Consumes `fd`; returns the fd of the last part."""
    try:
        for name in parts:
            fd = _step(fd, name, path, links_left)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(fd: int, name: str, path: Path, links_left: list[int]) -> int:
    """The directory `name` in `fd`, open (closing `fd`)."""
    try:
        following = os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        if not stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
            raise
        following = _follow(fd, name, path, links_left)
    os.close(fd)
    return following


def _follow(fd: int, name: str, path: Path, links_left: list[int]) -> int:
    if not _link_is_trusted(fd, name):
        raise UsageError(f"{path}: {name} is a symbolic link that another user can change; "
                         "nettrail does not follow those in output paths",
                         "give the real path, through directories only root can change")
    links_left[0] -= 1
    if links_left[0] < 0:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
    target = Path(os.readlink(name, dir_fd=fd))
    start = os.open("/", DIR_FLAGS) if target.is_absolute() else os.dup(fd)
    return _walk(start, [part for part in target.parts if part != "/"], path, links_left)


def _open_parent(path: Path) -> int:
    """The directory `path` goes into, open (open_dir); its own problems as one line."""
    parent = path.parent
    try:
        return open_dir(parent)
    except FileNotFoundError:
        raise OutputError(f"cannot write {path}: the directory {parent} does not exist",
                          "create it first or choose another path") from None
    except NotADirectoryError:
        raise OutputError(f"cannot write {path}: {parent} is not a directory",
                          "choose another path") from None
    except PermissionError:
        raise PrivilegeError(f"cannot write {path}: permission denied on {parent}",
                             "choose a directory this user can write to") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}",
                          "choose another path") from None


def _unsafe_dir(st: os.stat_result, path: Path, fix: str,
                private: bool) -> OutputError | None:
    """Why nettrail will not write into this directory, or None.

    A private (capture, snapshot root) directory must be this user's and
    writable by nobody else: its files are created one by one. A directory
    that receives one file (a report) may also be root's, even /tmp: that file
    is created under an unpredictable name and renamed into place, so nobody
    can redirect the write. Other users' directories are refused either way."""
    owners = {os.geteuid()} if private else {os.geteuid(), 0}
    if st.st_uid not in owners:
        return OutputError(f"{path} belongs to uid {st.st_uid}, not to this user (uid "
                           f"{os.geteuid()}): nettrail does not write into other users' "
                           "directories", fix)
    if private and st.st_mode & 0o022:
        return OutputError(f"{path} can be written by other users (mode "
                           f"{stat.S_IMODE(st.st_mode):o})", fix)
    return None


class OutputDir:
    """A directory nettrail writes into, held open: everything goes through its fd."""

    def __init__(self, path: Path, fd: int, fix: str = DEFAULT_FIX) -> None:
        self.path = path
        self.fd = fd
        self.fix = fix

    @classmethod
    def private(cls, path: Path, empty: bool, fix: str = DEFAULT_FIX) -> OutputDir:
        """Create `path` (mode 0700), or accept an existing real directory of
        this user that nobody else can write to (and, if `empty`, is empty)."""
        parent_fd = _open_parent(path)
        try:
            with writing(path, fix):
                created = _mkdir(path.name, parent_fd)
                fd = _open_dir_nofollow(path, parent_fd)
        finally:
            os.close(parent_fd)
        out = cls(path, fd, fix)
        try:
            if created:
                os.fchmod(fd, DIR_MODE)  # whatever the umask
            out._check_private(empty)
        except BaseException:
            out.close()
            raise
        return out

    @classmethod
    def for_file(cls, path: Path, fix: str = DEFAULT_FIX) -> OutputDir:
        """The existing directory a single file (a report, the index) goes into.
        It must be this user's or root's: other users' directories are refused."""
        return cls._for_one_file(path.parent, _open_parent(path), fix)

    @classmethod
    def for_open_dir(cls, path: Path, dir_fd: int, fix: str = DEFAULT_FIX) -> OutputDir:
        """for_file of a directory already open (a capture the report has
        read): its own fd, duplicated, never `path` looked up again."""
        return cls._for_one_file(path, os.dup(dir_fd), fix)

    @classmethod
    def _for_one_file(cls, path: Path, fd: int, fix: str) -> OutputDir:
        problem = _unsafe_dir(os.fstat(fd), path, "write it elsewhere with -o FILE",
                              private=False)
        if problem:
            os.close(fd)
            raise problem
        return cls(path, fd, fix)

    def _check_private(self, empty: bool) -> None:
        problem = _unsafe_dir(os.fstat(self.fd), self.path,
                              "choose a new directory of your own with -o", private=True)
        if problem:
            raise problem
        if empty and os.listdir(self.fd):
            raise UsageError(f"{self.path} is not empty", "choose a new directory with -o")

    def new_file(self, name: str) -> BinaryIO:
        """A file that must not exist yet, mode 0600, for appending logs."""
        with writing(self.path / name, self.fix):
            fd = os.open(name, NEW_FILE_FLAGS, FILE_MODE, dir_fd=self.fd)
            os.fchmod(fd, FILE_MODE)
            return os.fdopen(fd, "wb", buffering=1 << 16)

    def write(self, name: str, data: bytes, mode: int = FILE_MODE) -> None:
        """Replace `name` atomically: an unpredictable temporary, then rename."""
        with writing(self.path / name, self.fix):
            tmp, fd = self._temporary(name, mode)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                self._require_regular_or_absent(name)
                os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=self.fd)
                raise

    def _require_regular_or_absent(self, name: str) -> None:
        """Renaming over /dev/null or a directory would replace it: refuse.
        A symlink is replaced itself, never followed."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise UsageError(f"{self.path / name} exists and is not a regular file",
                             "choose another file name")

    def _temporary(self, name: str, mode: int) -> tuple[str, int]:
        for _ in range(TEMP_ATTEMPTS):
            tmp = f".{name}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(tmp, NEW_FILE_FLAGS, FILE_MODE, dir_fd=self.fd)
            except FileExistsError:
                continue
            os.fchmod(fd, mode)
            return tmp, fd
        raise FileExistsError(errno.EEXIST, "no unused temporary name", name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _mkdir(name: str, parent_fd: int) -> bool:
    """True when this call created the directory."""
    try:
        os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
    except FileExistsError:
        return False
    return True


def _open_dir_nofollow(path: Path, parent_fd: int) -> int:
    try:
        return os.open(path.name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        st = os.stat(path.name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(f"{path} is a symbolic link; nettrail does not follow links "
                             "in output paths", "give the real directory") from None
        raise UsageError(f"{path} exists and is not a directory",
                         "choose a new directory with -o") from None


def write_private(path: Path, data: bytes, fix: str = DEFAULT_FIX,
                  mode: int = FILE_MODE) -> None:
    """Write one file (a report) safely into its existing directory, mode 0600
    (or `mode`: a metrics file another service reads)."""
    with OutputDir.for_file(path, fix) as out:
        out.write(path.name, data, mode)


class Unreadable(NettrailError):
    """A file nettrail reads is not a regular file, too large, or cannot be opened."""


def open_regular(name: str | Path, dir_fd: int | None = None) -> BinaryIO:
    """Open a file to read that must be a regular file: never through a
    symlink, and never blocking on a FIFO or opening a device."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unreadable(f"{name} is a symbolic link", "nettrail reads no links") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PrivilegeError(f"cannot read {name}: permission denied",
                                 "run as the user who made it (sudo for root's captures)"
                                 ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unreadable(f"{name} is not a regular file", "nettrail reads only regular files")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(name: str | Path, limit: int, dir_fd: int | None = None) -> bytes:
    """A whole small regular file (meta.json, index.json), at most `limit` bytes."""
    with open_regular(name, dir_fd) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"{name} is larger than {limit} bytes", "it is not nettrail's")
    return data
