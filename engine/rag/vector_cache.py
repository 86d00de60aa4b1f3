"""Vectors by content: the same text, embedded by the same model, is embedded once.

Keys are sha256(model, variant, text), values float32 vectors in SQLite, beside the chunks
they came from. The variant is the embedder's path: "fp32" (torch, or its exact ONNX export:
the same vectors, so one key, the one used before int8 existed) or "int8" (close, not equal:
never served for fp32; fp32 vectors do serve int8 requests, as exact ones are at least as
good). A document's entries go when the document does: vectors can give away something of
the text they were made from.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..embeddings import PRECISIONS
from ..store.db import Database

if TYPE_CHECKING:
    from ..embeddings import TextEmbedder


class CachedEmbedder:
    """``embed`` through the cache; everything else is the wrapped embedder's."""

    def __init__(self, embedder: TextEmbedder, database: Database):
        self.embedder = embedder
        self.database = database
        #: texts embedded / served from the cache since this object was made (for benchmarks)
        self.misses = self.hits = 0

    def key(self, text: str, variant: str = "fp32") -> str:
        model = self.embedder.name if variant == "fp32" else f"{self.embedder.name}#{variant}"
        return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        variant = self.embedder.variant()
        keys = [self.key(t, variant) for t in texts]
        found = self._get(set(keys))
        if variant != "fp32":
            # torch's exact vectors serve an int8 request (never the reverse): an ingest that
            # began on torch, before the export was ready, resumes without redoing its slices
            exact = {self.key(t): k for k, t in zip(keys, texts) if k not in found}
            found.update({exact[e]: v for e, v in self._get(set(exact)).items()})
        todo = {k: t for k, t in zip(keys, texts) if k not in found}  # duplicates in a batch: once
        if todo:
            made_by, vectors = self.embedder.embed_tagged(list(todo.values()))
            # filed under the path that made them (it may have switched since ``variant`` was read)
            self._put({self.key(t, made_by): v for t, v in zip(todo.values(), vectors)})
            found.update(zip(todo, vectors))
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        return [found[k] for k in keys]

    def forget(self, texts: Iterable[str]) -> None:
        """Drop the entries of these texts (a deleted document's chunks), of every variant."""
        keys = [(self.key(t, variant),) for t in texts for variant in PRECISIONS]
        with self.database.tx() as db:
            db.conn.executemany("delete from rag_vector_cache where key = ?", keys)

    def _get(self, keys: set[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        ordered = sorted(keys)
        with self.database.read() as db:
            for start in range(0, len(ordered), 500):  # SQLite caps the number of parameters
                part = ordered[start : start + 500]
                marks = ",".join("?" * len(part))
                for key, blob in db.execute(
                    f"select key, vector from rag_vector_cache where key in ({marks})", part
                ):
                    out[key] = array("f", blob).tolist()
        return out

    def _put(self, vectors: dict[str, list[float]]) -> None:
        rows = [(k, array("f", v).tobytes()) for k, v in vectors.items()]
        with self.database.tx() as db:
            db.conn.executemany("insert or replace into rag_vector_cache (key, vector) values (?, ?)", rows)
