"""Work after an answer is saved (the KV cache settled for the next turn; memory: index,
remember, summarize), one job at a time.

The answer's Done event is shown at once; the jobs run in one background thread, in the
order their turns finished. The next turn waits for them (so a summary is in place before
the prompt that needs it), and ``close`` finishes them before the stores close.
A failing job is logged and never reaches the user.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)


class Upkeep:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._last: Future[None] | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._pool is None:  # made on first use
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hearth-upkeep")
            self._last = self._pool.submit(_guarded, job)

    def wait(self) -> None:
        """Return when every job submitted so far is done (one worker: the last one is last)."""
        with self._lock:
            last = self._last
        if last is not None:
            last.result()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _guarded(job: Callable[[], object]) -> None:
    try:
        job()
    except Exception:  # noqa: BLE001 - upkeep failing must not stop the next turn
        log.exception("upkeep after an answer failed")
