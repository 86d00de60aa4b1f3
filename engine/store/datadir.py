"""The data directory: private to its user, and used by one Hearth process at a time.

Private: the directory and what Hearth creates in it are made 0700 (folders) and 0600
(files) with explicit modes, whatever the process umask is (the umask is process-wide
state, and changing it would race with every other thread that creates files).

One process at a time: Chroma's embedded store is not safe across processes, so the
first process takes an exclusive ``flock`` on ``hearth.lock`` for as long as it runs and
writes who it is into the file; a second one is refused with that description.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from ..errors import DataDirInUseError, StoreError

LOCK_NAME = "hearth.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700; an existing one is tightened too."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
            path.chmod(DIR_MODE)
    except OSError as e:
        raise StoreError(f"Cannot create or protect the folder {path}: {e.strerror or e}.") from e
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it is missing, and make it 0600 (owner read and write only).

    Created with ``os.open(..., 0o600)`` so it is never readable by others, even briefly."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
                os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
    except OSError as e:
        raise StoreError(f"Cannot create or protect the file {path}: {e.strerror or e}.") from e
    return path


def tighten(path: Path) -> None:
    """Make an existing file 0600 (SQLite's -wal and -shm files, for one); missing is fine."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            path.chmod(FILE_MODE)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StoreError(f"Cannot protect the file {path}: {e.strerror or e}.") from e


class DataDirLock:
    """An exclusive lock on a data directory, held until ``release``.

    ``owner`` describes this process for whoever is refused (pid is added): for a server,
    {"command": "serve", "url": "http://127.0.0.1:7860"}.
    """

    def __init__(self, data_dir: Path, owner: dict[str, Any] | None = None):
        import fcntl

        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None
        fd = self._open()
        try:
            if not _try_flock(fd) and _read_holder(fd).get("pid") == os.getpid():
                # this very process holds it (a second Services, as tests build): in one process
                # Chroma shares one client per path, so sharing is what happened before the lock
                os.close(fd)
                return
            _flock_briefly(fd, fcntl.LOCK_EX)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise StoreError(f"Cannot lock the data directory ({self.path}): {e.strerror or e}.") from e
            raise DataDirInUseError(describe_holder(self.path.parent, holder)) from e
        self._fd = fd
        self._write(fd, {**(owner or {}), "pid": os.getpid()})

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as e:
            raise StoreError(f"Cannot open the lock file {self.path}: {e.strerror or e}.") from e

    @staticmethod
    def _write(fd: int, owner: dict[str, Any]) -> None:
        data = json.dumps(owner, ensure_ascii=False).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def describe(self, **owner: Any) -> None:
        """Add to what the lock file says about this process (the server's URL once known)."""
        if self._fd is None:
            return
        current = _read_holder(self._fd)
        self._write(self._fd, {**current, **owner, "pid": os.getpid()})

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # nobody holds it now: a stale description would mislead
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the flock


def _try_flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _flock_briefly(fd: int, kind: int, seconds: float = 1.0) -> None:
    """flock without blocking for long: a ``probe`` holds a shared lock for microseconds, so
    retry a little before concluding that a real holder is there."""
    import fcntl

    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def probe(data_dir: Path) -> None:
    """Raise DataDirInUseError if another process holds ``data_dir`` now; take nothing.

    A quick early check (a command may then spend seconds importing before ``build``
    takes the lock for real); a missing directory is free."""
    import fcntl

    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StoreError(f"Cannot open the lock file {path}: {e.strerror or e}.") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_holder(fd)
        if holder.get("pid") != os.getpid():
            raise DataDirInUseError(describe_holder(path.parent, holder)) from e
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        value = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def describe_holder(data_dir: Path, holder: dict[str, Any]) -> str:
    who = f"process {holder['pid']}" if isinstance(holder.get("pid"), int) else "another process"
    if holder.get("command"):
        who += f" (`{holder['command']}`)"
    where = f", serving {holder['url']}" if holder.get("url") else ""
    hint = "open that page instead, or stop it" if holder.get("url") else "wait for it to finish, or stop it"
    return (
        f"Another Hearth is using the data directory {data_dir}: {who}{where}. Two processes on one "
        f"data directory would corrupt its vector index, so this one stops: {hint}, or use another --data-dir."
    )
