"""A one-line ingest progress display on stderr: files done, chunks/s, time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.rag.progress import IngestProgress


class ProgressLine:
    """Rewrites one line in a terminal (at most 5 times a second); elsewhere (a log, a pipe)
    prints a line every ``every`` seconds, so a long ingest still shows it is alive."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else every
        self._last: float | None = None  # the first update always shows
        self._latest: IngestProgress | None = None
        self._shown: IngestProgress | None = None

    def __call__(self, progress: IngestProgress) -> None:
        self._latest = progress
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every:
            self._last = now
            self._show(progress)

    def _show(self, progress: IngestProgress) -> None:
        self._shown = progress
        name = progress.current[-40:]
        text = f"{progress.line()}  {name}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Show the final state (once) and end the line."""
        if self._latest is not None and self._latest is not self._shown:
            self._show(self._latest)
        if self.tty and self._shown is not None:
            self.stream.write("\n")
            self.stream.flush()
