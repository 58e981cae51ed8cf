"""Folders and files the stack creates as root, some of them owned by another user.

The stack runs as root and hands PostgreSQL's cluster to the ``postgres``
user; a path that follows a planted symlink (``pg_hba.conf -> /etc/shadow``)
would let that user, or anyone who can write the folder, make root overwrite
or chown any file. So every step below a trusted folder opens each component
with ``O_NOFOLLOW``, checks the owner and type on the open descriptor, and
changes modes and owners through that descriptor, never by path again.
A symlink or a stranger's file is refused with the path to remove.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

from acct2crm.errors import StackError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

Owner = tuple[int, int]  # uid, gid
_HERE = PurePath()


def _refused(path: PurePath, why: str) -> StackError:
    return StackError(f"refusing {path}: {why} (remove it, then run `acct2crm up` again)")


def _open(path: PurePath, name: str | Path, flags: int, dir_fd: int | None,
          mode: int = 0o600) -> int:
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(name, dir_fd)):
            raise _refused(path, "it is a symlink") from exc
        if exc.errno == errno.ENOTDIR:
            raise _refused(path, "it is not a folder") from exc
        raise StackError(f"cannot open {path}: {exc.strerror}") from exc


def _is_link(name: str | Path, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _check_owner(path: PurePath, info: os.stat_result, owners: set[int]) -> None:
    if info.st_uid not in owners:
        raise _refused(path, f"it belongs to uid {info.st_uid}, not to this stack")


@contextlib.contextmanager
def open_dir(trusted: Path, rel: PurePath = _HERE) -> Iterator[int]:
    """A descriptor of ``trusted/rel``; no component from ``trusted`` down may be a symlink."""
    fd = _open(trusted, trusted, _DIR, None)
    try:
        where = PurePath(trusted)
        for part in rel.parts:
            where = where / part
            inner = _open(where, part, _DIR, fd)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def ensure_dir(trusted: Path, rel: PurePath, *, mode: int = PRIVATE_DIR,
               owner: Owner | None = None) -> None:
    """Create ``trusted/rel`` if missing (its parent must exist) with ``mode`` and ``owner``.

    An existing folder is accepted only when it is a real folder that belongs
    to this process's user or to ``owner``; its mode and owner are then set.
    """
    path = trusted / rel
    with open_dir(trusted, rel.parent) as parent:
        with contextlib.suppress(FileExistsError):
            os.mkdir(rel.name, mode, dir_fd=parent)
        fd = _open(path, rel.name, _DIR, parent)
    try:
        info = os.fstat(fd)
        _check_owner(path, info, {os.geteuid(), *([owner[0]] if owner else [])})
        if owner is not None and (info.st_uid, info.st_gid) != owner:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def ensure_private_root(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create ``path`` (and missing parents) as this user's folder with ``mode``; check it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_dir(path.parent, PurePath(path.name), mode=mode)


def check_private_root(path: Path) -> None:
    """``path`` is a real folder of this user that no one else may write into."""
    try:
        info = os.lstat(path)
    except FileNotFoundError as exc:
        raise StackError(f"{path} is gone") from exc
    if stat.S_ISLNK(info.st_mode):
        raise _refused(path, "it is a symlink")
    if not stat.S_ISDIR(info.st_mode):
        raise _refused(path, "it is not a folder")
    _check_owner(path, info, {os.geteuid()})
    if info.st_mode & 0o022:
        raise _refused(path, f"others may write into it (mode {info.st_mode & 0o777:o})")


def write_file(trusted: Path, rel: PurePath, text: str, *, mode: int = PRIVATE_FILE,
               owner: Owner | None = None) -> None:
    """Replace the content of ``trusted/rel`` (created with ``mode``), never through a link."""
    path = trusted / rel
    with open_dir(trusted, rel.parent) as parent:
        fd = _open(path, rel.name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                   parent, mode)
    with os.fdopen(fd, "w") as handle:
        _check_regular(path, os.fstat(fd), owner)
        os.ftruncate(fd, 0)
        handle.write(text)
        handle.flush()
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)


def read_file(trusted: Path, rel: PurePath, *, owner: Owner | None = None) -> str | None:
    """The text of ``trusted/rel``, or None when it does not exist; never through a link."""
    path = trusted / rel
    try:
        with open_dir(trusted, rel.parent) as parent:
            fd = os.open(rel.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except FileNotFoundError:
        return None
    except StackError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, "it is a symlink") from exc
        raise StackError(f"cannot read {path}: {exc.strerror}") from exc
    with os.fdopen(fd) as handle:
        _check_regular(path, os.fstat(fd), owner)
        return handle.read()


def append_line_once(trusted: Path, rel: PurePath, line: str, *,
                     owner: Owner | None = None) -> None:
    """Add ``line`` at the end of an existing file unless it already holds it."""
    path = trusted / rel
    with open_dir(trusted, rel.parent) as parent:
        fd = _open(path, rel.name, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                   parent)
    with os.fdopen(fd, "r+") as handle:
        _check_regular(path, os.fstat(fd), owner)
        if line not in handle.read():
            handle.write(f"\n{line}\n")


def _check_regular(path: PurePath, info: os.stat_result, owner: Owner | None) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _refused(path, "it is not a regular file")
    if info.st_nlink != 1:
        raise _refused(path, "it has other hard links")
    _check_owner(path, info, {os.geteuid(), *([owner[0]] if owner else [])})
