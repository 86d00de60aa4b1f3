"""Document chunks in CLIP space, so an image can find the passages closest to it.

The text index proper uses a sentence embedder whose space has nothing to do with
CLIP's; this second index embeds the same chunks with CLIP's text tower. It is built
lazily, the first time an image is compared with text, and kept in step with the
documents service by chunk id (new chunks embedded, removed ones dropped).
CLIP reads only about the first 60 words of a chunk (77 tokens).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..types import Hit
from ..vectors import VectorStore, collection_name
from .clip import ClipEmbedder

if TYPE_CHECKING:
    from ..rag import DocumentService

#: chunk text kept with each vector, for showing a result without another lookup
PREVIEW_CHARS = 600
_EMBED_STEP = 256


class ClipChunkIndex:
    def __init__(
        self, vectors: VectorStore, embedder: ClipEmbedder, documents: Callable[[], DocumentService | None]
    ):
        self.vectors = vectors
        self.embedder = embedder
        self._documents = documents
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return collection_name("clip-chunks", self.embedder.config.key)

    def available(self) -> bool:
        return self._documents() is not None

    def sync(self) -> int:
        """Embed chunks the index lacks and drop ones that are gone; return how many were added."""
        docs = self._documents()
        if docs is None:
            return 0
        with self._lock:
            chunks = {cid: (text or "", source or "") for cid, text, source in docs.all_chunks(None)}
            col = self.vectors.collection(self.name)
            have = set(col.ids())
            gone = sorted(have - chunks.keys())
            col.delete(ids=gone)
            missing = [cid for cid in chunks if cid not in have]
            for start in range(0, len(missing), _EMBED_STEP):
                ids = missing[start : start + _EMBED_STEP]
                vectors = self.embedder.embed_texts([chunks[i][0] for i in ids])
                metas = [{"source": chunks[i][1], "text": chunks[i][0][:PREVIEW_CHARS]} for i in ids]
                col.upsert(ids, vectors, metas)
            return len(missing)

    def search(self, vector: list[float], k: int) -> list[Hit]:
        if not self.available():
            return []
        self.sync()
        matches = self.vectors.collection(self.name).query(vector, k)
        return [
            Hit(
                kind="chunk",
                id=m.id,
                text=str(m.metadata.get("text", "")),
                score=m.score,
                source=str(m.metadata.get("source", "")),
                meta={"space": "clip"},
            )
            for m in matches
        ]
