"""Memory candidates for a question: archival memories and past messages, by meaning and by words.

Each tier is searched both ways (Chroma vectors, SQLite FTS5 keywords); every candidate
gets one fused score (engine/memory/hybrid.py), so a paraphrase ("my gran") finds what
keywords miss ("my grandmother") and an exact name finds what vectors blur. The query is
embedded once per distinct text (``QueryVectors``), shared by both tiers and by the
after-turn indexing of the same user message.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import EngineError
from ..types import Hit
from .archival import ArchivalEntry, ArchivalMemory
from .hybrid import coverage, fused, stems
from .message_vectors import MessageVectors, QueryVectors
from .recall import RecallMemory

log = logging.getLogger(__name__)

#: characters of a past message quoted into the prompt (the whole message stays in recall)
RECALL_CHARS = 240


@dataclass(kw_only=True)
class Candidates:
    """Memory candidates for one question, and what could not be searched."""

    hits: list[Hit] = field(default_factory=list)
    #: one line per tier that failed ("archival memory: <reason>"); the others still count
    errors: list[str] = field(default_factory=list)


class MemoryRetriever:
    def __init__(
        self,
        *,
        archival: ArchivalMemory,
        recall: RecallMemory,
        messages: MessageVectors,
        queries: QueryVectors,
    ):
        self._archival = archival
        self._recall = recall
        self._messages = messages
        self._queries = queries

    def candidates(self, query: str, conversation_id: str, through_seq: int, *, k: int) -> list[Hit]:
        """Every candidate with its fused relevance as ``score``, best first, one per fact."""
        return self.search(query, conversation_id, through_seq, k=k).hits

    def search(self, query: str, conversation_id: str, through_seq: int, *, k: int) -> Candidates:
        """``candidates`` with the failures kept. No threshold here (the caller applies it; the
        bench tunes it on these scores). Messages after ``through_seq`` of this conversation
        are in the window: left out."""
        found = Candidates()
        query_stems = stems(query)
        vector = self._query_vector(query, found.errors)
        hits = self._archival_hits(query, query_stems, vector, k, found.errors)
        hits += self._recall_hits(query, query_stems, vector, k, (conversation_id, through_seq), found.errors)
        hits.sort(key=lambda h: h.score, reverse=True)
        found.hits = _one_per_fact(hits)
        return found

    def prefetch(self, query: str) -> None:
        """Embed ``query`` now, so that ``search`` finds its vector cached (the embedder's LRU);
        nothing when no memory has a vector. A failure is left for ``search`` to report."""
        if self._needs_vector(query):
            try:
                self._queries.get(query)
            except Exception as e:  # noqa: BLE001 - a background thread; the turn's own search reports it
                log.debug("question not embedded ahead: %s", e)

    def _needs_vector(self, query: str) -> bool:
        """Whether searching for ``query`` by meaning can find anything: no memory with a vector
        means no embedding work at all."""
        return bool(query.strip()) and bool(self._archival.count() or self._messages.count())

    def _query_vector(self, query: str, errors: list[str]) -> list[float] | None:
        if not self._needs_vector(query):
            return None
        try:
            return self._queries.get(query)
        except EngineError as e:
            log.warning("memory search by meaning unavailable this turn: %s", e)
            errors.append(f"search by meaning: {e}")
            return None

    def _archival_hits(
        self, query: str, query_stems: frozenset[str], vector: list[float] | None, k: int, errors: list[str]
    ) -> list[Hit]:
        archival = self._archival
        if not archival.count():
            return []
        cosines: dict[str, float] = {}
        entries: dict[str, ArchivalEntry] = {}
        try:
            if vector is not None:
                for e in archival.nearest(vector, k):
                    entries[e.id], cosines[e.id] = e, e.score
            for e in archival.keyword_search(query, k=k):
                entries.setdefault(e.id, e)
            if vector is not None:
                missing = [i for i in entries if i not in cosines]
                cosines.update(_cosines(vector, archival.vectors_of(missing)))
        except EngineError as e:
            log.warning("archival memory unavailable this turn: %s", e)
            errors.append(f"archival memory: {e}")
        return [
            _scored(e.to_hit(), cosines.get(e.id), coverage(query_stems, e.text)) for e in entries.values()
        ]

    def _recall_hits(
        self,
        query: str,
        query_stems: frozenset[str],
        vector: list[float] | None,
        k: int,
        window: tuple[str, int],
        errors: list[str],
    ) -> list[Hit]:
        cosines: dict[str, float] = {}
        try:
            found = {
                r.message_id: r
                for r in self._recall.search(query, limit=k, include_inactive=False, exclude_after=window)
            }
            if vector is not None:
                matches = self._messages.search(vector, k=k, exclude_after=window)
                cosines = {m.message_id: m.score for m in matches}
                found.update(self._recall.by_ids([i for i in cosines if i not in found]))
                missing = [i for i, r in found.items() if i not in cosines and r.role == "user"]
                cosines.update(_cosines(vector, self._messages.vectors_of(missing)))
        except EngineError as e:
            log.warning("recall memory unavailable this turn: %s", e)
            errors.append(f"recall memory: {e}")
            return []
        return [
            _scored(r.to_hit(max_chars=RECALL_CHARS), cosines.get(i), coverage(query_stems, r.content))
            for i, r in found.items()
        ]


def _scored(hit: Hit, cosine: float | None, cover: float) -> Hit:
    # the parts stay with the hit (and with the answer's sources): why it was quoted
    meta = {**hit.meta, "cosine": None if cosine is None else round(cosine, 4), "coverage": round(cover, 4)}
    return dataclasses.replace(hit, score=fused(cosine, cover), meta=meta)


def _cosines(vector: Sequence[float], stored: dict[str, list[float]]) -> dict[str, float]:
    return {i: float(sum(a * b for a, b in zip(vector, v))) for i, v in stored.items()}


def _one_per_fact(hits: list[Hit]) -> list[Hit]:
    """An automatic memory and the message it came from say the same: keep the better-scored one."""
    kept: list[Hit] = []
    seen: set[tuple[str, str]] = set()
    for hit in hits:
        if hit.kind == "memory":
            keys = {("memory", hit.id), ("recall", hit.meta.get("message_id") or "")}
        else:
            keys = {("recall", hit.id)}
        if keys & seen:
            continue
        seen |= keys
        kept.append(hit)
    return kept
