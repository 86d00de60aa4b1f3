"""One ingest run: files in order of size, embedded in length-sorted slices, committed file by file.

Small files go first and are committed before a big file is even read, so they are
searchable in seconds whatever the big one costs. Chunks are embedded in slices of
``EMBED_SLICE``, each slice's vectors stored in the vector cache as soon as it lands: an
ingest killed halfway through a big file re-embeds, when run again, only the slices it had
not finished (files already committed are skipped by content hash), and progress is
reported slice by slice.

A run stops when its ``cancel`` event is set (the page's Stop, Ctrl+C, the watcher shutting
down): before the next file is read, or between embedding slices. Files whose vectors are
all ready by then are committed; the others are left out whole ("skipped"), their embedded
slices kept in the vector cache, so adding them again picks up where this run stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EngineError
from ..library import STOPPED
from ..types import FileResult
from . import ingest
from .blocks import LoadedDocument
from .chunking import embedding_text
from .files import Entry, Skipped, SourceFile
from .parsing import ParserPool
from .progress import OnProgress, ProgressMeter
from .store import DocumentStore
from .vector_cache import CachedEmbedder

#: texts per embedding call: small enough for steady progress and little lost work on a kill,
#: large enough that the model's own batching (32) keeps busy
EMBED_SLICE = 128


@dataclass(kw_only=True)
class Parts:
    """What a run needs from the DocumentService."""

    store: DocumentStore
    embedder: Any
    cached: CachedEmbedder
    limits: Any
    parser: ParserPool
    vector_index: Callable[[str], Any]
    #: held while embedding and writing, never while parsing (a slow file must not block others)
    lock: threading.Lock


class IngestRun:
    def __init__(
        self,
        parts: Parts,
        files: Sequence[Entry],
        collection: str,
        *,
        progress: ingest.Progress | None = None,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ):
        self.parts = parts
        self.cancel = cancel or threading.Event()
        self.files = files
        self.collection = collection
        self.progress = progress
        self.sizes = [_size(f) for f in files]
        self.meter = ProgressMeter(self.sizes, on_progress)
        self.results: list[FileResult | None] = [None] * len(files)
        self.done = 0

    def run(self) -> list[FileResult]:
        """Every entry gets its own result, in the order given, whatever goes wrong with it."""
        pending: list[tuple[int, ingest.Prepared]] = []
        for i in sorted(range(len(self.files)), key=self.sizes.__getitem__):
            if self.cancel.is_set():
                break
            file = self.files[i]
            if self.sizes[i] >= ingest.BIG_FILE_BYTES:
                self._flush(pending)
            outcome = self._outcome(file)
            if isinstance(outcome, FileResult):
                self.meter.skipped(i)
                self._finish(i, outcome, _name(file))
                continue
            self.meter.parsed(i, len(outcome.chunks))
            pending.append((i, outcome))
            if sum(len(p.chunks) for _, p in pending) >= ingest.FLUSH_CHUNKS:
                self._flush(pending)
        self._flush(pending)
        for i, result in enumerate(self.results):
            if result is None:  # stopped before this file was done; a later ingest picks it up
                self.results[i] = FileResult(path=_given(self.files[i]), status="skipped", message=STOPPED)
        return [r for r in self.results if r is not None]

    def _outcome(self, file: Entry) -> ingest.Prepared | FileResult:
        if isinstance(file, Skipped):
            return FileResult(path=file.given, status="skipped", message=file.message)
        if isinstance(file, tuple):  # (what was given, why it cannot be read)
            return ingest.error_result(*file)
        return self._prepare(file)

    def _finish(self, i: int, result: FileResult, name: str) -> None:
        self.results[i] = result
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.files), name)
        self.meter.file_done(name)

    def _prepare(self, file: SourceFile) -> ingest.Prepared | FileResult:
        """Read, parse (in the worker process) and chunk one file; no lock held."""
        parts = self.parts
        limits = parts.limits.parse_limits()

        def load(data: bytes, name: str, kind: str) -> LoadedDocument:
            return parts.parser.load(data, name=name, kind=kind, limits=limits)

        try:
            return ingest.prepare(
                file,
                self.collection,
                store=parts.store,
                embedder=parts.embedder,
                limits=parts.limits,
                load=load,
            )
        except EngineError as e:
            return ingest.error_result(file.given, e)
        except Exception as e:  # noqa: BLE001 - one file's surprise must not cost the batch
            return ingest.unexpected_result(file.given, file.name, e)

    def _flush(self, pending: list[tuple[int, ingest.Prepared]]) -> None:
        """Embed every pending file's chunks, then commit file by file."""
        if not pending:
            return
        with self.parts.lock:
            self._write(pending)
        pending.clear()

    def _write(self, pending: list[tuple[int, ingest.Prepared]]) -> None:
        texts = [embedding_text(c.text, c.heading) for _, p in pending for c in p.chunks]
        ready = pending
        try:
            index = self.parts.vector_index(self.collection)
            # stopped mid-way: only the files with every vector go on, the others are left out whole
            ready, vectors = _complete(pending, self._embed(texts, pending[-1][1].file.name))
            batch = [(p, ingest.chunk_rows(p)) for _, p in ready]
            if batch:
                ingest.write_vectors(batch, vectors, index)
        except Exception as e:  # noqa: BLE001 - EngineError or not, every file of the batch is told
            for i, p in ready:
                bad = ingest.error_result(p.file.given, e) if isinstance(e, EngineError) else None
                self._finish(i, bad or ingest.unexpected_result(p.file.given, p.file.name, e), p.file.name)
            return
        for (i, p), (_, rows) in zip(ready, batch):
            try:
                result = ingest.commit(p, rows, store=self.parts.store, index=index)
            except EngineError as e:
                result = ingest.error_result(p.file.given, e)
            except Exception as e:  # noqa: BLE001
                result = ingest.unexpected_result(p.file.given, p.file.name, e)
            self._finish(i, result, p.file.name)

    def _embed(self, texts: list[str], name: str) -> list[list[float]]:
        """Vectors of ``texts`` in their order, embedded shortest first in slices: texts of one
        length share a batch, so little of each model call is padding."""
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), EMBED_SLICE):
            if self.cancel.is_set():
                break  # the slices embedded so far are in the vector cache for the next run
            part = order[start : start + EMBED_SLICE]
            for n, vector in zip(part, self.parts.cached.embed([texts[n] for n in part])):
                vectors[n] = vector
            self.meter.embedded(len(part), name)
        return vectors


def _complete(
    pending: list[tuple[int, ingest.Prepared]], vectors: list[list[float]]
) -> tuple[list[tuple[int, ingest.Prepared]], list[list[float]]]:
    """The files of ``pending`` whose chunks all have a vector (all of them unless the run was
    stopped mid-embedding), with their vectors in order."""
    kept: list[tuple[int, ingest.Prepared]] = []
    kept_vectors: list[list[float]] = []
    start = 0
    for item in pending:
        mine = vectors[start : start + len(item[1].chunks)]
        start += len(mine)
        if all(mine):
            kept.append(item)
            kept_vectors += mine
    return kept, kept_vectors


def _given(entry: Entry) -> str:
    if isinstance(entry, (SourceFile, Skipped)):
        return entry.given
    return entry[0]


def _name(entry: Entry) -> str:
    if isinstance(entry, SourceFile):
        return entry.name
    return entry.given if isinstance(entry, Skipped) else entry[0]


def _size(entry: Entry) -> int:
    if not isinstance(entry, SourceFile):
        return 0
    try:
        return entry.path.stat().st_size
    except OSError:
        return 0  # read_limited reports why
