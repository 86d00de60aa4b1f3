"""Parse untrusted files in a worker process, with a time limit and a memory limit.

A hostile file can make a parser run for minutes (a PDF whose pages all point at one big
content stream), eat all memory (nested JSON), or crash the interpreter (a C extension
meeting malformed input). In a worker process each of these costs one file, not the app:
the worker is killed when a file takes too long, restarted for the next one, and what it
raises comes back as a per-file message. The worker is a fresh interpreter that imports
only the engine's loaders and talks over a socket pair.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IngestError
from .blocks import LoadedDocument
from .loaders import LoadLimits

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

log = logging.getLogger("hearth.rag")

#: a fresh worker imports Python and the loaders; generous, since the machine may be busy
START_SECONDS = 120.0


@dataclass(frozen=True, kw_only=True)
class ParseLimits(LoadLimits):
    """LoadLimits plus what only a separate process can enforce."""

    #: a file still being parsed after this many seconds is stopped (its worker killed)
    seconds: float = 120.0
    #: address space the worker may use; None = no limit
    memory_bytes: int | None = 4 * 1024**3


class ParserWorker:
    """One long-lived worker process, used by one file at a time, replaced after a kill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Any = None

    def load(self, data: bytes, *, name: str, kind: str, limits: ParseLimits) -> LoadedDocument:
        """The loaded document, or IngestError saying why not (too slow, crashed, damaged...)."""
        job = (data, name, kind, LoadLimits(max_pages=limits.max_pages, max_chars=limits.max_chars))
        with self._lock:
            try:
                conn = self._ready(limits)
                conn.send(job)
            except (OSError, ValueError):  # the worker died while idle: this file is not to blame
                self._stop()
                conn = self._ready(limits)
                conn.send(job)
            if not conn.poll(limits.seconds):
                self._stop()
                raise IngestError(
                    f"{name}: refused, reading it took too long (over {limits.seconds:g} s), so it was "
                    "stopped. Damaged or deliberately malicious files do this; if it is a real document, "
                    "split it or raise the limit (--parse-seconds)."
                )
            try:
                status, *payload = conn.recv()
            except (EOFError, OSError) as e:
                code = self._stop()
                raise IngestError(
                    f"{name}: the file crashed the reader (exit code {code}), so it was skipped. It is "
                    "damaged, malicious, or needs more memory than the reader may use."
                ) from e
        if status == "ok":
            return payload[0]
        if status == "error":
            raise IngestError(payload[0])
        summary, details = payload
        log.error("reading %s failed unexpectedly:\n%s", name, details)
        raise IngestError(
            f"{name}: could not be read ({summary}). The file may be damaged; if it opens elsewhere, "
            "this is a bug in Hearth (details are in the log)."
        )

    def _ready(self, limits: ParseLimits):
        if self._process is not None and self._process.poll() is None:
            return self._conn
        self._stop()
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        mine, theirs = socket.socketpair()
        with mine, theirs:
            command = [
                sys.executable,
                "-c",
                _BOOT,
                _ROOT,
                str(theirs.fileno()),
                str(limits.memory_bytes or 0),
            ]
            # one thread per math library: the worker never computes, and idle thread pools would
            # eat into its address-space limit
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            self._process = subprocess.Popen(
                command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env
            )
            self._conn = Connection(mine.detach())
        if not self._conn.poll(START_SECONDS):
            self._stop()
            raise IngestError("The file reader process did not start; try again.")
        try:
            self._conn.recv()  # "ready"
        except (EOFError, OSError) as e:
            self._stop()
            raise IngestError(f"The file reader process failed to start ({e}).") from e
        return self._conn

    def _stop(self) -> int | None:
        """Kill the worker (if any) and forget it; its exit code (negative: killed by that signal)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        return process.wait()

    def kill(self) -> None:
        """Stop the worker now, even mid-file (that file then fails as a crash); for shutdown."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def close(self) -> None:
        self.kill()
        with self._lock:
            self._stop()


class ParserPool:
    """Up to ``size`` workers, started when needed and reused: a slow file occupies one of
    them, so another upload meanwhile is read by the next."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.workers: list[ParserWorker] = []
        self._idle: list[ParserWorker] = []
        self._free = threading.Condition()

    def load(self, data: bytes, *, name: str, kind: str, limits: ParseLimits) -> LoadedDocument:
        worker = self._take()
        try:
            return worker.load(data, name=name, kind=kind, limits=limits)
        finally:
            with self._free:
                self._idle.append(worker)
                self._free.notify()

    def _take(self) -> ParserWorker:
        with self._free:
            while not self._idle and len(self.workers) >= self.size:
                self._free.wait()
            if self._idle:
                return self._idle.pop()
            self.workers.append(ParserWorker())
            return self.workers[-1]

    def close(self) -> None:
        with self._free:
            workers = list(self.workers)
        for worker in workers:
            worker.close()


#: the repository root, so the worker imports this very engine whatever its working directory
_ROOT = str(Path(__file__).resolve().parents[2])
#: a fresh interpreter (not multiprocessing's spawn, which re-imports the parent's main script,
#: and not fork, unsafe in a process holding model threads and SQLite connections)
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from engine.rag.parsing import main; main(sys.argv[2:])"


def main(argv: list[str]) -> None:
    """The worker process: ``argv`` is (socket file descriptor, memory limit in bytes or 0)."""
    from multiprocessing.connection import Connection

    _ignore_ctrl_c()
    serve(Connection(int(argv[0])), int(argv[1]) or None)


def serve(conn: Connection, memory_bytes: int | None) -> None:
    """The worker's loop: parse what arrives until the other end closes."""
    _limit_memory(memory_bytes)
    conn.send(("ready",))
    while True:
        try:
            data, name, kind, limits = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_parse(data, name, kind, limits))


def _parse(data: bytes, name: str, kind: str, limits: LoadLimits) -> tuple:
    from ..errors import EngineError
    from .loaders import load_bytes

    try:
        return ("ok", load_bytes(data, name=name, kind=kind, limits=limits))
    except EngineError as e:
        return ("error", str(e))
    except MemoryError:
        return ("error", f"{name}: refused, reading it needs more memory than the reader may use.")
    except RecursionError:
        return ("error", f"{name}: refused, it is nested too deeply to read.")
    except Exception as e:  # noqa: BLE001 - any parser bug becomes this file's message, not a crash
        return ("bug", f"{type(e).__name__}: {e}", traceback.format_exc())


def _ignore_ctrl_c() -> None:
    """Ctrl+C in a terminal reaches the whole process group: the parent stops the ingest cleanly
    (after the file at hand), so the worker must not die mid-file and fail that file."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _limit_memory(memory_bytes: int | None) -> None:
    """Cap the worker's address space (this process only), so a memory bomb raises MemoryError."""
    if not memory_bytes:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass  # not available on this platform: the time limit still applies
