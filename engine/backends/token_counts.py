"""Work on texts, remembered per text: prompt assembly counts every message of the window again
each turn (twice: the total, then the fit), and the prompt's pieces come back every turn too
(engine/backends/prompt_tokens.py); on a long chat that was tens of milliseconds of tokenizing
before every answer (a remote server: one HTTP call each)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

#: texts remembered, least recently used dropped first
SIZE = 4096
#: longer texts are worked out every time (a pasted book is not kept for its count)
LONGEST = 16_000

_T = TypeVar("_T")


class Remembered(Generic[_T]):
    """``make(text)``, worked out once per text while it stays among the last ``size`` used;
    an empty text gives ``empty`` without asking. Safe to call from several threads (retrieval
    runs beside the chat)."""

    def __init__(self, make: Callable[[str], _T], *, empty: _T, size: int = SIZE, longest: int = LONGEST):
        self._make = make
        self._empty = empty
        self._size = size
        self._longest = longest
        self._known: OrderedDict[str, _T] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> _T:
        if not text:
            return self._empty
        with self._lock:
            if text in self._known:
                self._known.move_to_end(text)
                return self._known[text]
        made = self._make(text)  # outside the lock: a slow one (an HTTP call) holds up no other
        if len(text) > self._longest:
            return made
        with self._lock:
            self._known[text] = made
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return made


class TokenCounts(Remembered[int]):
    """Token counts of texts (``count(text)``), each worked out once while it is remembered."""

    def __init__(self, count: Callable[[str], int], size: int = SIZE):
        super().__init__(count, empty=0, size=size)
