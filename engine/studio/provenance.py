"""Where an answer came from: the model file's hash (computed once per file version, in the
background), the chat template's hash, the seed actually used and Hearth's version."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from ..config import SEED_RANDOM, GenerationConfig
from .store import StudioStore

log = logging.getLogger(__name__)


def _read_version() -> str:
    """Hearth's version from pyproject.toml, its one home (the app runs from a checkout)."""
    import tomllib

    try:
        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


#: Hearth's version, recorded with every answer
HEARTH_VERSION = _read_version()


def draw_seed(config: GenerationConfig) -> GenerationConfig:
    """``config`` with a concrete seed: -1 draws one here, so the answer records (and a re-run
    can use) the seed that produced it."""
    if config.seed != SEED_RANDOM:
        return config
    import random

    return config.replace(seed=random.randrange(2**31))


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class FileHasher:
    """SHA-256 of model files, cached by (path, size, mtime) in the database; hashing runs in a
    thread so no turn waits for a multi-GB file to be read."""

    def __init__(self, store: StudioStore):
        self._store = store
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}

    def lookup(self, path: str) -> tuple[int, int, str | None]:
        """(size, mtime_ns, sha256 or None while it is being computed); starts hashing if needed."""
        try:
            stat = Path(path).stat()
        except OSError:
            return 0, 0, None
        sha = self._store.file_hash(path, stat.st_size, stat.st_mtime_ns)
        if sha is None:
            self.start(path)
        return stat.st_size, stat.st_mtime_ns, sha

    def start(self, path: str) -> threading.Thread | None:
        with self._lock:
            running = self._running.get(path)
            if running is not None and running.is_alive():
                return running
            thread = threading.Thread(target=self._hash, args=(path,), name="hearth-hash", daemon=True)
            self._running[path] = thread
            thread.start()
            return thread

    def _hash(self, path: str) -> None:
        try:
            file = Path(path)
            before = file.stat()
            digest = hashlib.sha256()
            with file.open("rb") as f:
                while block := f.read(4 * 1024 * 1024):
                    digest.update(block)
            after = file.stat()
            if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
                self._store.remember_hash(path, after.st_size, after.st_mtime_ns, digest.hexdigest())
        except OSError as e:  # the file went away: the answer keeps its size and mtime
            log.warning("could not hash %s: %s", path, e)
        except Exception as e:  # noqa: BLE001 - a closed database at shutdown must not kill the thread noisily
            log.info("hashing %s stopped: %s", path, e)

    def wait(self, path: str, timeout: float = 60.0) -> None:
        """For tests and benches: until the running hash of ``path`` is done."""
        with self._lock:
            thread = self._running.get(path)
        if thread is not None:
            thread.join(timeout)
