"""Optional reranking stage: a sentence-transformers CrossEncoder reads each (question,
passage) pair together and reorders the fused top passages. Off unless ``--rerank-model``
names one (e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2``, or ``BAAI/bge-reranker-v2-m3`` for
many languages): it costs one forward pass per candidate on every search.

Only this module imports the CrossEncoder class (sentence_transformers is its one heavy
library, loaded lazily).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

from .errors import RetrievalError
from .types import Hit


class CrossEncoderReranker:
    def __init__(self, model: str, *, device: str | None = None, batch_size: int = 16, max_length: int = 512):
        self.model_ref = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import CrossEncoder

                    self._model = CrossEncoder(
                        self.model_ref, device=self.device or "cpu", max_length=self.max_length
                    )
                except Exception as e:  # missing model, no network, bad files
                    raise RetrievalError(f"Could not load the reranking model {self.model_ref!r}: {e}") from e
            return self._model

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        model = self._load()
        raw = model.predict(
            [(query, p) for p in passages],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [float(s) for s in raw.reshape(len(passages), -1)[:, -1]]

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """``hits`` best first by the cross-encoder; each keeps its fused score in ``meta``."""
        texts = [(h.meta.get("heading", "") + "\n\n" + h.text).strip() for h in hits]
        scored = zip(self.scores(query, texts), range(len(hits)), hits)
        return [
            dataclasses.replace(
                h, score=s, meta={**h.meta, "fused_score": round(h.score, 4), "rerank_score": round(s, 4)}
            )
            for s, _, h in sorted(scored, key=lambda t: (-t[0], t[1]))
        ]
