"""DocumentService: the Documents feature's public face (ingest, search, delete, chat retrieval)."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, EngineError, NotFoundError
from ..library import DEFAULT_COLLECTION
from ..store import StoredConversation
from ..store.db import Database
from ..turn import Contribution, Turn
from ..types import FileResult, Hit
from ..vectors import VectorStore, collection_name
from . import ingest
from .chunking import embedding_text
from .citations import Passage, passage
from .files import Entry, expand
from .image_sync import Images
from .keyword import KeywordIndex
from .parsing import ParseLimits, ParserPool
from .pipeline import IngestRun, Parts
from .progress import OnProgress
from .relevance import relevant
from .rewrite import Generate, SearchOptions
from .search import HybridSearcher
from .store import DocumentInfo, DocumentStore
from .vector_cache import CachedEmbedder
from .watch import FolderWatcher

if TYPE_CHECKING:
    from ..embeddings import TextEmbedder
    from ..rerank import CrossEncoderReranker

Mode = str  # "hybrid" | "dense" | "bm25"

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class IngestLimits:
    #: files larger than this are refused
    max_bytes: int = 50 * 1024 * 1024
    #: chunk size, in tokens of the embedding model
    chunk_tokens: int = 200
    #: tokens repeated between neighbouring chunks of the same section
    chunk_overlap: int = 30
    #: PDFs with more pages are refused before any page is read
    max_pages: int = 2000
    #: documents with more text than this (in characters) are refused
    max_chars: int = 10_000_000
    #: a file still being parsed after this many seconds is stopped and refused
    parse_seconds: float = 120.0
    #: memory the parser process may use (bytes); None = no limit
    parse_memory_bytes: int | None = 4 * 1024**3

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(
            max_pages=self.max_pages,
            max_chars=self.max_chars,
            seconds=self.parse_seconds,
            memory_bytes=self.parse_memory_bytes,
        )


class DocumentService:
    def __init__(
        self,
        *,
        database: Database,
        vectors: VectorStore,
        embedder: TextEmbedder,
        limits: IngestLimits = IngestLimits(),
        generate: Generate | None = None,
        chat_k: int = 4,
        reranker: CrossEncoderReranker | None = None,
        images: Images = lambda: None,
    ):
        self.store = DocumentStore(database)
        self.vectors = vectors
        self.embedder = embedder
        #: what ingest and repair embed with: never the same text twice
        self.cached = CachedEmbedder(embedder, database)
        self.limits = limits
        self.keywords = KeywordIndex(database)
        self.searcher = HybridSearcher(
            store=self.store,
            keywords=self.keywords,
            embedder=embedder,
            index=self.vector_index,
            generate=generate,
            reranker=reranker,
        )
        #: what chat retrieval uses (the Documents panel may change it)
        self.chat_options = SearchOptions()
        self.chat_k = chat_k
        #: held while embedding and writing, never while parsing (a slow file must not block others)
        self._ingest_lock = threading.Lock()
        self._parser = ParserPool()
        #: watched folders (the Documents tab); the server starts its thread, nothing else does
        self.watcher = FolderWatcher(self, database, images=images)

    def vector_index(self, collection: str):
        """The Chroma collection holding ``collection``'s vectors for the current embedding model.

        One per (model, collection): models differ in dimension, and searching a whole Chroma
        collection is several times faster than filtering a shared one by metadata. The names
        are hashes, so any collection name is safe.
        """
        return self.vectors.collection(self._index_name(collection))

    def _index_name(self, collection: str) -> str:
        model = self.embedder.name
        tag = hashlib.sha256(f"{model}\0{collection}".encode()).hexdigest()[:16]
        return collection_name("hearth-docs", re.sub(r"\W+", "_", model)[-40:], tag)

    # collections and documents

    def collections(self) -> list[str]:
        return self.store.collections()

    def create_collection(self, name: str) -> str:
        return self.store.ensure_collection(name)

    def delete_collection(self, name: str) -> None:
        if name == DEFAULT_COLLECTION:
            raise ConfigError(
                f"{DEFAULT_COLLECTION!r} is the default collection and stays; delete its documents instead.",
                field="collection",
            )
        self._forget("collection = ?", name)
        self.store.delete_collection(name)
        self.vectors.delete_collection(self._index_name(name))

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        return self.store.documents(collection)

    def delete(self, document_id: str) -> None:
        """Remove a document (with its keyword index rows) from SQLite and the vector cache, then
        its vectors from Chroma."""
        self._forget("document_id = ?", document_id)
        collection, ids = self.store.delete_document(document_id)
        self._drop_vectors(collection, ids)

    def _forget(self, where: str, value: str) -> None:
        with self.cached.database.read() as db:
            rows = db.execute(f"select text, heading from rag_chunks where {where}", [value]).fetchall()
        self.cached.forget(embedding_text(text, heading or "") for text, heading in rows)

    def document_text(self, document_id: str) -> str:
        return self.store.document_text(document_id)

    def passage(self, chunk_id: str) -> Passage:
        """A cited chunk in the text around it, for the citation viewer (NotFoundError once gone)."""
        return passage(self.store, chunk_id)

    def all_chunks(self, collection: str | None = None) -> Iterator[tuple[str, str, str]]:
        """(chunk id, text, source file name) for every chunk, streamed."""
        for row in self.store.iter_chunks(collection):
            yield row["id"], row["text"], row["name"]

    # ingest

    def ingest_paths(
        self,
        paths: Sequence[Path],
        *,
        collection: str = DEFAULT_COLLECTION,
        progress: ingest.Progress | None = None,
        names: Sequence[str] | None = None,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[FileResult]:
        """Add files and folders; one FileResult per file, in order. A bad file never stops the
        others. ``names`` (one per path) gives uploads their real names and identities."""
        return self.ingest_files(
            expand(paths, names),
            collection=collection,
            progress=progress,
            on_progress=on_progress,
            cancel=cancel,
        )

    def ingest_files(
        self,
        files: Sequence[Entry],
        *,
        collection: str = DEFAULT_COLLECTION,
        progress: ingest.Progress | None = None,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[FileResult]:
        """``ingest_paths`` after folder expansion (see ``files.expand``). Every entry gets its own
        result whatever goes wrong with it. ``progress`` hears of each file done, ``on_progress``
        also of chunks embedded, with chunks/s and time left. Once ``cancel`` is set, the run
        stops at the next file or embedding slice: files whose vectors are all ready are
        committed, the others left out whole ("skipped", ``library.STOPPED``); adding them
        again resumes from the vector cache."""
        collection = self.store.ensure_collection(collection)
        parts = Parts(
            store=self.store,
            embedder=self.embedder,
            cached=self.cached,
            limits=self.limits,
            parser=self._parser,
            vector_index=self.vector_index,
            lock=self._ingest_lock,
        )
        run = IngestRun(parts, files, collection, progress=progress, on_progress=on_progress, cancel=cancel)
        return run.run()

    # search

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        collections: list[str] | None = None,
        mode: Mode = "hybrid",
        options: SearchOptions | None = None,
    ) -> list[Hit]:
        """Ranked chunks for ``query``: "hybrid" (dense + BM25 fused by reciprocal rank),
        "dense" or "bm25". ``collections`` None or empty means all."""
        if mode not in ("hybrid", "dense", "bm25"):
            raise ConfigError(f"Unknown search mode {mode!r}: use hybrid, dense or bm25.", field="mode")
        if not query or not query.strip():
            raise ConfigError("Type something to search for.", field="query")
        if not 1 <= k <= 100:
            raise ConfigError(f"k must be between 1 and 100; got {k}.", field="k")
        names = self.resolve_collections(collections)
        return self.searcher.search(
            query.strip(),
            k=k,
            generations=self.store.generations(names),
            mode=mode,
            options=options or SearchOptions(),
        )

    def resolve_collections(self, collections: list[str] | None) -> list[str] | None:
        if not collections:
            return None
        known = set(self.store.collections())
        missing = [c for c in collections if c not in known]
        if missing:
            raise NotFoundError(
                f"No collection named {missing[0]!r}. Collections: {', '.join(sorted(known))}."
            )
        return list(collections)

    # the turn's provider (engine/turn.py)

    @property
    def provider_name(self) -> str:
        return "documents"

    def contribute(self, turn: Turn) -> Contribution:
        """This turn's passages; a broken index costs the documents, never the answer."""
        try:
            hits = self.retrieve_for_chat(turn.query, turn.conversation)
        except EngineError as e:
            log.warning("documents unavailable this turn: %s", e)
            return Contribution(source=self.provider_name, error=str(e))
        return Contribution(source=self.provider_name, hits=tuple(hits))

    def retrieve_for_chat(self, query: str, conversation: StoredConversation) -> list[Hit]:
        """Hits for a chat turn from the conversation's collections (empty list = all),
        keeping only passages that are plausibly about the question. Raises EngineError
        when the index cannot be searched."""
        wanted = list(conversation.collections)
        known = set(self.store.collections())
        names = [c for c in wanted if c in known] if wanted else None
        if (wanted and not names) or not query.strip() or self.store.count_chunks(names) == 0:
            return []  # nothing to search: do not even load the embedding model
        options = self.chat_options
        hits = self.searcher.search(
            query.strip(),
            k=self.chat_k,
            generations=self.store.generations(names),
            mode="hybrid",
            options=replace(options, candidates=max(options.candidates, 20)),
        )
        return [h for h in hits if relevant(h, query, options.min_similarity)]

    # upkeep

    def repair(self, *, progress: ingest.Progress | None = None) -> dict[str, int]:
        """Make the vector index match SQLite: embed chunks that have no vector (a new embedding
        model, a crash) and drop vectors SQLite no longer knows."""
        embedded = removed = 0
        with self._ingest_lock:
            for collection in self.store.collections():
                index = self.vector_index(collection)
                have = set(index.ids())
                known: set[str] = set()
                missing = []
                for row in self.store.iter_chunks(collection):
                    known.add(row["id"])
                    if row["id"] not in have:
                        missing.append(row)
                self._drop_vectors(collection, sorted(have - known))
                removed += len(have - known)
                self._embed_rows(index, missing, progress)
                embedded += len(missing)
        return {"embedded": embedded, "removed": removed}

    def consistency(self) -> dict[str, list[str]]:
        """Every document SQLite shows (``documents``), and those whose chunks are not all in
        both indexes (``inconsistent``): vectors in Chroma, words in the keyword index. After
        any crash the second list must be empty (the fault battery checks it)."""
        documents: list[str] = []
        inconsistent: list[str] = []
        for collection in self.store.collections():
            vectors = set(self.vector_index(collection).ids())
            words = self.store.keyword_chunks(collection)
            chunks: dict[str, set[str]] = {}
            for row in self.store.iter_chunks(collection):
                chunks.setdefault(row["document_id"], set()).add(row["id"])
            for info in self.store.documents(collection):
                documents.append(info.id)
                mine = chunks.get(info.id, set())
                if len(mine) != info.n_chunks or not mine <= vectors or not mine <= words:
                    inconsistent.append(info.id)
        return {"documents": documents, "inconsistent": inconsistent}

    def _embed_rows(self, index, rows: list[dict], progress: ingest.Progress | None) -> None:
        for start in range(0, len(rows), ingest.FLUSH_CHUNKS):
            part = rows[start : start + ingest.FLUSH_CHUNKS]
            vectors = self.cached.embed([embedding_text(r["text"], r["heading"] or "") for r in part])
            metadata = [{"document_id": r["document_id"], "collection": r["collection"]} for r in part]
            index.upsert([r["id"] for r in part], vectors, metadata)
            if progress is not None:
                progress(start + len(part), len(rows), "embedding")

    def _drop_vectors(self, collection: str, ids: list[str]) -> None:
        if ids:
            try:
                self.vector_index(collection).delete(ids=ids)
            except EngineError:
                pass  # invisible without their SQLite rows; repair() removes them later

    def close(self) -> None:
        self.watcher.stop()
        self._parser.close()
