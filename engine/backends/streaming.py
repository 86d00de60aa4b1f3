"""Incremental stop-string detection, shared by every backend.

Each fed piece costs O(len(piece) + longest stop string): text that cannot be the
start of a stop string is released at once; only a short tail is held back.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]):
        self._stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self._stops), default=0)
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add text; return what can be shown now. Sets ``stopped`` at a stop string."""
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._pending + piece
        first = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if first >= 0:
            self.stopped = True
            self._pending = ""
            return text[:first]
        keep = self._longest_partial(text)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Release held-back text at the end of the stream."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out

    def _longest_partial(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
