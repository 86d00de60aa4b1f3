"""Token counts of texts, remembered: prompt assembly counts every message of the window again
each turn (twice: the total, then the fit), which on a long chat cost tens of milliseconds of
tokenizing before every answer (a remote server: one HTTP call each)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

#: texts remembered, least recently used dropped first
SIZE = 4096
#: longer texts are counted every time (a pasted book is not kept for its count)
LONGEST = 16_000


class TokenCounts:
    """``count(text)`` for non-empty texts, each worked out once while it stays among the last
    ``size`` used; safe to call from several threads (retrieval runs beside the chat)."""

    def __init__(self, count: Callable[[str], int], size: int = SIZE):
        self._count = count
        self._size = size
        self._known: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            if text in self._known:
                self._known.move_to_end(text)
                return self._known[text]
        n = self._count(text)  # outside the lock: a slow count (an HTTP call) holds up no other
        if len(text) > LONGEST:
            return n
        with self._lock:
            self._known[text] = n
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return n
