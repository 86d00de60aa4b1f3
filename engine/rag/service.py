"""DocumentService: the Documents feature's public face (ingest, search, delete, chat retrieval)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, EngineError, NotFoundError
from ..store import StoredConversation
from ..store.db import Database
from ..types import FileResult, Hit
from ..vectors import VectorStore, collection_name
from . import ingest
from .chunking import embedding_text
from .files import Entry, Skipped, SourceFile, expand
from .keyword import KeywordIndex
from .migrations import DEFAULT_COLLECTION
from .parsing import ParseLimits, ParserPool
from .rewrite import Generate, SearchOptions
from .search import HybridSearcher
from .store import DocumentInfo, DocumentStore
from .vector_cache import CachedEmbedder

if TYPE_CHECKING:
    from ..embeddings import TextEmbedder
    from ..rerank import CrossEncoderReranker

Mode = str  # "hybrid" | "dense" | "bm25"


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
        #: why the last chat retrieval came back empty-handed, when it failed
        self.last_error: str | None = None

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
    ) -> list[FileResult]:
        """Add files and folders; one FileResult per file, in order. A bad file never stops the
        others. ``names`` (one per path) gives uploads their real names and identities."""
        return self.ingest_files(expand(paths, names), collection=collection, progress=progress)

    def ingest_files(
        self,
        files: Sequence[Entry],
        *,
        collection: str = DEFAULT_COLLECTION,
        progress: ingest.Progress | None = None,
    ) -> list[FileResult]:
        """``ingest_paths`` after folder expansion (see ``files.expand``). Every entry gets its own
        result whatever goes wrong with it."""
        collection = self.store.ensure_collection(collection)
        results: list[FileResult | None] = [None] * len(files)
        done = 0

        def finish(i: int, result: FileResult, name: str) -> None:
            nonlocal done
            results[i] = result
            done += 1
            if progress is not None:
                progress(done, len(files), name)

        pending: list[tuple[int, ingest.Prepared]] = []
        sizes = [_size(f) for f in files]
        # small files first, and committed before a big one is read: they become searchable in
        # seconds, not after the big one's minutes of parsing and embedding (results keep their order)
        for i in sorted(range(len(files)), key=sizes.__getitem__):
            file = files[i]
            if sizes[i] >= ingest.BIG_FILE_BYTES:
                self._flush(pending, finish)
            if isinstance(file, Skipped):
                finish(i, FileResult(path=file.given, status="skipped", message=file.message), file.given)
                continue
            if isinstance(file, tuple):  # (what was given, why it cannot be read)
                finish(i, ingest.error_result(*file), file[0])
                continue
            outcome = self._prepare(file, collection)
            if isinstance(outcome, FileResult):
                finish(i, outcome, file.name)
                continue
            pending.append((i, outcome))
            if sum(len(p.chunks) for _, p in pending) >= ingest.FLUSH_CHUNKS:
                self._flush(pending, finish)
        self._flush(pending, finish)
        return [r for r in results if r is not None]

    def _prepare(self, file: SourceFile, collection: str) -> ingest.Prepared | FileResult:
        """Read, parse (in the worker process) and chunk one file; no lock held."""
        limits = self.limits.parse_limits()

        def load(data: bytes, name: str, kind: str):
            return self._parser.load(data, name=name, kind=kind, limits=limits)

        try:
            return ingest.prepare(
                file, collection, store=self.store, embedder=self.embedder, limits=self.limits, load=load
            )
        except EngineError as e:
            return ingest.error_result(file.given, e)
        except Exception as e:  # noqa: BLE001 - one file's surprise must not cost the batch
            return ingest.unexpected_result(file.given, file.name, e)

    def _flush(self, pending: list[tuple[int, ingest.Prepared]], finish) -> None:
        """Embed every pending file's chunks in one call, then commit file by file."""
        if not pending:
            return
        with self._ingest_lock:
            self._write(pending, finish)
        pending.clear()

    def _write(self, pending: list[tuple[int, ingest.Prepared]], finish) -> None:
        batch = [(p, ingest.chunk_rows(p)) for _, p in pending]
        texts = [embedding_text(c.text, c.heading) for _, p in pending for c in p.chunks]
        try:
            index = self.vector_index(pending[0][1].document["collection"])
            ingest.write_vectors(batch, self.cached.embed(texts), index)
        except Exception as e:  # noqa: BLE001 - EngineError or not, every file of the batch is told
            for i, p in pending:
                bad = ingest.error_result(p.file.given, e) if isinstance(e, EngineError) else None
                finish(i, bad or ingest.unexpected_result(p.file.given, p.file.name, e), p.file.name)
            return
        for (i, p), (_, rows) in zip(pending, batch):
            try:
                result = ingest.commit(p, rows, store=self.store, index=index)
            except EngineError as e:
                result = ingest.error_result(p.file.given, e)
            except Exception as e:  # noqa: BLE001
                result = ingest.unexpected_result(p.file.given, p.file.name, e)
            finish(i, result, p.file.name)

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

    def retrieve_for_chat(self, query: str, conversation: StoredConversation) -> list[Hit]:
        """Hits for a chat turn from the conversation's collections (empty list = all),
        keeping only passages that are plausibly about the question."""
        wanted = list(conversation.collections)
        known = set(self.store.collections())
        names = [c for c in wanted if c in known] if wanted else None
        if (wanted and not names) or not query.strip() or self.store.count_chunks(names) == 0:
            return []  # nothing to search: do not even load the embedding model
        options = self.chat_options
        try:
            hits = self.searcher.search(
                query.strip(),
                k=self.chat_k,
                generations=self.store.generations(names),
                mode="hybrid",
                options=replace(options, candidates=max(options.candidates, 20)),
            )
        except EngineError as e:
            # a broken index must not break the conversation: answer without documents, say why
            self.last_error = str(e)
            return []
        return [h for h in hits if _relevant(h, query, options.min_similarity)]

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
        self._parser.close()


def _size(entry: Entry) -> int:
    if not isinstance(entry, SourceFile):
        return 0
    try:
        return entry.path.stat().st_size
    except OSError:
        return 0  # read_limited reports why


_WORDISH = re.compile(r"\w[\w.:-]*\w")


def identifiers(text: str) -> set[str]:
    """Codes and names a small embedding model cannot know: ZX-4471, parse_args, HbA1c, NASA."""
    out: set[str] = set()
    for token in _WORDISH.findall(text):
        mixed = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
        if len(token) >= 3 and (mixed or "_" in token or "-" in token or token[1:] != token[1:].lower()):
            out.add(token.lower())
    return out


def _relevant(hit: Hit, query: str, min_similarity: float) -> bool:
    dense = hit.meta.get("dense_score")
    if dense is not None and dense >= min_similarity:
        return True
    text = hit.text.lower()
    return any(term in text for term in identifiers(query))
