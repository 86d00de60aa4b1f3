"""How often the page shows a streaming answer: the browser renders each update on the cores
that decode the answer, so the chat and Compare show the first text at once, then at most
every ``PAGE_UPDATE_S``.

Every update costs the browser the same bookkeeping whatever it carries (Gradio 6 refreshes the
loading state of each component an event has touched, and re-renders the answer's markdown).
Measured on 2 cores with Chromium beside the engine (bench/bench_client.py): Chromium used 0.38
of a core at 50 ms and 0.25 at 100 ms, and the answer decoded 5 % faster."""

from __future__ import annotations

import time

#: the page shows a streaming answer at most this often (its first text at once)
PAGE_UPDATE_S = 0.1


class UpdateClock:
    """Whether a streamed update is shown now; one clock per stream on the page."""

    def __init__(self) -> None:
        self._shown = float("-inf")

    def due(self, first: bool = False) -> bool:
        """Show now if ``first`` (first text, or an event that must show) or ``PAGE_UPDATE_S``
        has passed since the last update shown; a True answer counts as shown."""
        now = time.monotonic()
        if first or now - self._shown >= PAGE_UPDATE_S:
            self._shown = now
            return True
        return False
