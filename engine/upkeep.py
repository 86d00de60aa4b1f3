"""Work after an answer is saved (the KV cache settled for the next turn; memory: index,
remember, summarize), one job at a time.

The answer's Done event is shown at once; the jobs run in the background, one after another, in the
order their turns finished. The next turn waits for them (so a summary is in place before
the prompt that needs it), and ``close`` finishes them before the stores close.
A failing job is logged and never reaches the user.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Upkeep:
    """Jobs run one at a time, in the order submitted, each on a thread of its own that ends
    with it (no idle worker is kept; the llama.cpp work of a job runs on the backend's llama
    thread, see backends/llama_thread)."""

    def __init__(self) -> None:
        self._last: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            worker = threading.Thread(target=_after, args=(self._last, job), name="hearth-upkeep")
            self._last = worker
            worker.start()

    def wait(self) -> None:
        """Return when every job submitted so far is done (each waits for the one before)."""
        with self._lock:
            last = self._last
        if last is not None:
            last.join()

    def close(self) -> None:
        self.wait()


def _after(previous: threading.Thread | None, job: Callable[[], object]) -> None:
    if previous is not None:
        previous.join()
    _guarded(job)


def _guarded(job: Callable[[], object]) -> None:
    try:
        job()
    except Exception:  # noqa: BLE001 - upkeep failing must not stop the next turn
        log.exception("upkeep after an answer failed")
