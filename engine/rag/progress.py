"""How far an ingest has come: files done, chunks embedded, chunks/s and time left.

The meter is fed by the ingest loop (files as they finish, chunks as each embedding slice
lands) and hands out immutable ``IngestProgress`` snapshots, which the CLI prints and the
page shows. Time left counts the chunks of files not parsed yet from their size, at the
bytes-per-chunk rate of the files parsed so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: before any file is parsed: about this many bytes of a text file make one chunk
_BYTES_PER_CHUNK = 1000.0


@dataclass(frozen=True, kw_only=True)
class IngestProgress:
    """One snapshot of a running ingest."""

    files_done: int
    files_total: int
    #: chunks whose vectors are ready (embedded now or found in the vector cache)
    chunks_done: int
    #: chunks of the files parsed so far plus an estimate for the files not parsed yet
    chunks_total: int
    #: chunks per second since the first chunk was read
    chunks_per_second: float
    #: None until a rate is known
    seconds_left: float | None
    #: the file being worked on
    current: str

    def line(self) -> str:
        """One line for a terminal or the page: "3/28 files · 1,200/20,400 chunks · 41 chunks/s · 7 min left"."""
        parts = [f"{self.files_done}/{self.files_total} files"]
        if self.chunks_total:
            parts.append(f"{self.chunks_done:,}/{self.chunks_total:,} chunks")
        if self.chunks_per_second > 0:
            parts.append(f"{self.chunks_per_second:,.0f} chunks/s")
        if self.seconds_left is not None:
            parts.append(f"{format_seconds(self.seconds_left)} left")
        return " · ".join(parts)

    @property
    def fraction(self) -> float:
        """0..1, by chunks when they are known (a big file is most of the work), else by files."""
        if self.chunks_total:
            return min(1.0, self.chunks_done / self.chunks_total)
        return self.files_done / max(1, self.files_total)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


OnProgress = Callable[[IngestProgress], None]


class ProgressMeter:
    """Counts an ingest's work and reports each change to ``report`` (when given)."""

    def __init__(self, sizes: Sequence[int], report: OnProgress | None, *, clock=time.monotonic):
        self._sizes = list(sizes)
        self._report = report
        self._clock = clock
        self._started = clock()
        self._files_done = 0
        self._unparsed_bytes = sum(self._sizes)
        self._parsed_bytes = 0
        self._parsed_chunks = 0
        self._chunks_done = 0
        self._current = ""

    def parsed(self, index: int, chunks: int) -> None:
        """File ``index`` was read and cut into ``chunks`` chunks (0 when it needs no embedding)."""
        size = self._sizes[index]
        self._unparsed_bytes -= size
        if chunks:
            self._parsed_bytes += size
            self._parsed_chunks += chunks

    def skipped(self, index: int) -> None:
        """File ``index`` will never be parsed (unchanged, refused, an error)."""
        self._unparsed_bytes -= self._sizes[index]

    def embedded(self, chunks: int, current: str) -> None:
        self._chunks_done += chunks
        self._current = current
        self._emit()

    def file_done(self, current: str) -> None:
        self._files_done += 1
        self._current = current
        self._emit()

    def snapshot(self) -> IngestProgress:
        elapsed = max(1e-6, self._clock() - self._started)
        rate = self._chunks_done / elapsed
        per_chunk = self._parsed_bytes / self._parsed_chunks if self._parsed_chunks else _BYTES_PER_CHUNK
        total = self._parsed_chunks + round(max(0, self._unparsed_bytes) / per_chunk)
        left = max(0, total - self._chunks_done)
        return IngestProgress(
            files_done=self._files_done,
            files_total=len(self._sizes),
            chunks_done=self._chunks_done,
            chunks_total=max(total, self._chunks_done),
            chunks_per_second=rate,
            seconds_left=left / rate if rate > 0 else None,
            current=self._current,
        )

    def _emit(self) -> None:
        if self._report is not None:
            self._report(self.snapshot())
