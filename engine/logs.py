"""Where Hearth's log goes: stderr and ``DATA_DIR/hearth.log``.

Every Hearth module logs under the ``hearth`` logger (``logging.getLogger("hearth.rag")``),
never with print(). The engine only logs; ``log_to`` is called once by the entry point
(cli.main), which owns the process. The file rotates (a long-running server must not fill
the disk) and is private like every other file in the data directory: logs quote file
names, questions and server replies.
"""

from __future__ import annotations

import io
import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

from .store.datadir import private_dir, private_file

LOG_NAME = "hearth.log"
#: the parent of every Hearth logger
ROOT = "hearth"
#: size of one log file, and how many rotated ones are kept beside it (hearth.log.1 ...)
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 3


class PrivateLogFile(RotatingFileHandler):
    """A rotating log file created 0600, the rotated ones too, in a 0700 folder. Opened at the
    first record, so a command that logs nothing leaves no file behind."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)

    def _open(self) -> io.TextIOWrapper:
        path = Path(self.baseFilename)
        private_dir(path.parent)
        private_file(path)
        return super()._open()


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes, as ``warning: message``."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Short())

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always the current sys.stderr, so a replaced stderr (tests, daemons) is followed


class _Short(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


def log_to(data_dir: Path | None, level: str = "warning") -> Path | None:
    """Send Hearth's messages at ``level`` and above, and other libraries' warnings, to stderr
    and (with a data directory) to its log file; returns the file's path. Calling it again
    replaces what an earlier call set up."""
    hearth_level = logging.getLevelName(level.upper())
    stop_logging()
    root = logging.getLogger()
    root.setLevel(max(hearth_level, logging.WARNING))
    logging.getLogger(ROOT).setLevel(hearth_level)
    root.addHandler(_Stderr())
    if data_dir is None:
        return None
    path = Path(data_dir) / LOG_NAME
    file = PrivateLogFile(path)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
    root.addHandler(file)
    return path


def stop_logging() -> None:
    """Undo ``log_to`` (the command has ended): close the file, leave stderr to the caller."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, (PrivateLogFile, _Stderr))]:
        root.removeHandler(handler)
        handler.close()
    logging.getLogger(ROOT).setLevel(logging.NOTSET)
