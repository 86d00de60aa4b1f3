"""Hybrid search: dense vectors (Chroma) and BM25 (SQLite FTS5), fused by normalised scores
weighted per question (see fusion.py), then optionally reordered by a cross-encoder.

Only chunks that SQLite knows are returned: vectors left behind by an interrupted
ingest, or written by an ingest still in flight, are skipped (never deleted here, since
an in-flight ingest is about to commit them; ``DocumentService.repair`` removes real
leftovers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..types import Hit
from .citations import row_location
from .fusion import FusionWeights, dense_weight, score_fusion
from .keyword import KeywordIndex
from .rewrite import Generate, SearchOptions, expand_queries, hypothetical_answer, safe
from .store import DocumentStore

if TYPE_CHECKING:
    from ..embeddings import TextEmbedder
    from ..rerank import CrossEncoderReranker
    from ..vectors import VectorCollection


class HybridSearcher:
    def __init__(
        self,
        *,
        store: DocumentStore,
        keywords: KeywordIndex,
        embedder: TextEmbedder,
        index: Callable[[str], VectorCollection],
        generate: Generate | None = None,
        reranker: CrossEncoderReranker | None = None,
        weights: FusionWeights = FusionWeights(),
    ):
        self.store = store
        self.keywords = keywords
        self.embedder = embedder
        self.index = index
        self.generate = generate
        #: a CrossEncoderReranker (engine/rerank.py) or None
        self.reranker = reranker
        self.weights = weights

    def search(
        self, query: str, *, k: int, generations: dict[str, int], mode: str, options: SearchOptions
    ) -> list[Hit]:
        names = list(generations)
        if not names or self.store.count_chunks(names) == 0:
            return []
        queries = [query, *self._expansions(query, options)]
        n = max(options.candidates, k)
        dense: dict[str, float] = {}
        keyword: dict[str, float] = {}
        if mode != "bm25":
            self._dense(queries + self._hyde(query, options), n, names, dense)
        if mode != "dense":
            for q in queries:
                for i, s in self.keywords.search(q, k=n, collections=names):
                    keyword[i] = max(keyword.get(i, 0.0), s)
        if mode == "hybrid":
            share = dense_weight(query, self.weights, multilingual=self.embedder.multilingual)
            scored = score_fusion(dense, keyword, dense_share=share, candidates=n)
        else:
            native = dense if mode == "dense" else keyword
            scored = sorted(native.items(), key=lambda kv: -kv[1])
        if self.reranker is not None and options.rerank:
            hits = self._hits(scored, max(k, options.rerank_candidates), dense, keyword)
            return self.reranker.rerank(query, hits)[:k]
        return self._hits(scored, k, dense, keyword)

    def _expansions(self, query: str, options: SearchOptions) -> list[str]:
        generate = self.generate
        if not (options.multi_query and generate):
            return []
        return safe(lambda: expand_queries(query, generate), [])

    def _hyde(self, query: str, options: SearchOptions) -> list[str]:
        generate = self.generate
        if not (options.hyde and generate):
            return []
        passage = safe(lambda: hypothetical_answer(query, generate), "")
        return [passage] if passage else []

    def _dense(self, texts: list[str], n: int, names: list[str], scores: dict[str, float]) -> None:
        """Best cosine per chunk over ``texts``; collections are separate indexes, merged by
        cosine similarity (comparable: one model made every vector)."""
        indexes = [self.index(name) for name in names]
        for vector in self.embedder.embed_queries(texts):
            matches = [m for index in indexes for m in index.query(vector, n)]
            matches.sort(key=lambda m: -m.score)
            for m in matches[:n]:
                scores[m.id] = max(scores.get(m.id, -1.0), m.score)

    def _hits(self, scored: list[tuple[str, float]], k: int, dense: dict, keyword: dict) -> list[Hit]:
        rows = self.store.chunks([i for i, _ in scored[: max(k * 3, k + 10)]])
        if len([i for i, _ in scored[:k] if i in rows]) < k:  # leftovers skipped: look further down
            rows = self.store.chunks([i for i, _ in scored])
        hits: list[Hit] = []
        # a passage stored twice (a notice repeated on every page, a file in two collections) is
        # returned once: its copy would only crowd another passage out of the answer's context
        seen: set[str] = set()
        for chunk_id, score in scored:
            row = rows.get(chunk_id)
            if row is None:
                continue
            same = " ".join(row["text"].split()).casefold()
            if same in seen:
                continue
            seen.add(same)
            meta = {"document_id": row["document_id"], "collection": row["collection"]}
            if row["heading"]:
                meta["heading"] = row["heading"]
            if chunk_id in dense:
                meta["dense_score"] = round(dense[chunk_id], 4)
            if chunk_id in keyword:
                meta["bm25_score"] = round(keyword[chunk_id], 4)
            hits.append(
                Hit(
                    kind="chunk",
                    id=chunk_id,
                    text=row["text"],
                    score=float(score),
                    source=row["name"],
                    page=row["page"],
                    start=row["start"],
                    end=row["end"],
                    meta=meta,
                    location=row_location(row),
                )
            )
            if len(hits) == k:
                break
        return hits
