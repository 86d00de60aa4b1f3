"""Ingest pipeline: read, parse and chunk files, embed them in shared batches, and commit
each file atomically.

Order of writes, chosen so an interruption never shows half a document: the vectors of a
batch of files first (invisible: search only returns chunks that SQLite knows), then per
file one SQLite transaction swapping the old version for the new one (the moment it becomes
visible), then the old version's vectors are deleted. Vectors left behind by a crash are ignored
by search and removed by ``DocumentService.repair``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EngineError, IngestError
from ..types import FileResult
from .blocks import LoadedDocument
from .chunking import ChunkSpec, chunk_blocks
from .files import SourceFile, read_limited
from .loaders import file_kind, load_bytes
from .store import DocumentStore

if TYPE_CHECKING:
    from ..embeddings import TextEmbedder
    from ..vectors import VectorCollection
    from .service import IngestLimits

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: chunks gathered (across files) before one embedding call: small files share batches
FLUSH_CHUNKS = 256
#: files from this size on are ingested after the smaller ones of their batch, which are committed first
BIG_FILE_BYTES = 64 * 1024


@dataclass(kw_only=True)
class Prepared:
    """A parsed, chunked file waiting for its vectors."""

    file: SourceFile
    document: dict[str, Any]
    chunks: list[ChunkSpec]
    old_id: str | None
    notes: list[str]


def document_id(collection: str, content_hash: str) -> str:
    return hashlib.sha256(f"{collection}\0{content_hash}".encode()).hexdigest()[:32]


#: parse a file's bytes: (data, name, kind) -> LoadedDocument; the service's runs in a worker process
Load = Callable[[bytes, str, str], LoadedDocument]


def prepare(
    file: SourceFile,
    collection: str,
    *,
    store: DocumentStore,
    embedder: TextEmbedder,
    limits: IngestLimits,
    load: Load | None = None,
) -> Prepared | FileResult:
    """Everything before embedding; a FileResult when there is nothing to embed. Holds no lock:
    ``commit`` re-checks what this decided from the store (twins, the old version)."""
    data = read_limited(file, limits.max_bytes)
    content_hash = hashlib.sha256(data).hexdigest()
    previous = store.find(collection, source=file.source)
    unchanged = _already_there(file, collection, content_hash, previous, store)
    if unchanged is not None:
        return unchanged
    kind = file_kind(_named(file))
    loaded = load(data, file.name, kind) if load else load_bytes(data, name=file.name, kind=kind)
    text, chunks = chunk_blocks(
        loaded.blocks,
        count_tokens=embedder.count_tokens,
        max_tokens=limits.chunk_tokens,
        overlap_tokens=limits.chunk_overlap,
    )
    if not chunks:
        raise IngestError(f"{file.name}: no text found in it; nothing to index.")
    doc_id = document_id(collection, content_hash)
    document = {
        "id": doc_id,
        "collection": collection,
        "source": file.source,
        "name": file.name,
        "kind": loaded.kind,
        "content_hash": content_hash,
        "size_bytes": len(data),
        "n_chunks": len(chunks),
        "n_pages": loaded.n_pages,
        "encoding": loaded.encoding,
        "text": text,
        "embed_model": embedder.name,
    }
    return Prepared(
        file=file,
        document=document,
        chunks=chunks,
        old_id=previous["id"] if previous else None,
        notes=list(loaded.notes),
    )


def _named(file: SourceFile):
    """The path whose suffix picks the loader: the upload's own name when there is one."""
    from pathlib import Path

    return Path(file.name) if Path(file.name).suffix else file.path


def chunk_rows(prepared: Prepared) -> list[dict[str, Any]]:
    doc = prepared.document
    return [
        {
            "id": f"{doc['id']}-{seq:05d}",
            "document_id": doc["id"],
            "collection": doc["collection"],
            "seq": seq,
            "text": c.text,
            "heading": c.heading,
            "page": c.page,
            "start": c.start,
            "end": c.end,
            "n_tokens": c.n_tokens,
        }
        for seq, c in enumerate(prepared.chunks)
    ]


def _already_there(
    file: SourceFile,
    collection: str,
    content_hash: str,
    previous: dict[str, Any] | None,
    store: DocumentStore,
) -> FileResult | None:
    """ "unchanged" when this file, or a twin of it, is already in ``collection``."""
    if previous is not None and previous["content_hash"] == content_hash:
        return FileResult(
            path=file.given,
            status="unchanged",
            id=previous["id"],
            items=previous["n_chunks"],
            message=f"{file.name}: unchanged since it was added; nothing to do.",
        )
    twin = store.find(collection, content_hash=content_hash)
    if twin is not None:
        return FileResult(
            path=file.given,
            status="unchanged",
            id=twin["id"],
            items=twin["n_chunks"],
            message=f"{file.name}: identical to {twin['name']!r}, already in {collection!r}.",
        )
    return None


def write_vectors(
    batch: list[tuple[Prepared, list[dict[str, Any]]]], vectors: list[list[float]], index: VectorCollection
) -> None:
    """One upsert for a whole batch of files (Chroma's per-call cost is high). Invisible until
    each file's SQLite commit; ids derive from the content, so rewriting a twin's is harmless.
    Twins inside one batch (the same bytes under two names) are written once: Chroma refuses
    an upsert that repeats an id."""
    rows = [r for _, file_rows in batch for r in file_rows]
    first: dict[str, int] = {}
    for n, r in enumerate(rows):
        first.setdefault(r["id"], n)
    keep = sorted(first.values())
    index.upsert(
        [rows[n]["id"] for n in keep],
        [vectors[n] for n in keep],
        [{"document_id": rows[n]["document_id"], "collection": rows[n]["collection"]} for n in keep],
    )


def commit(
    prepared: Prepared, rows: list[dict[str, Any]], *, store: DocumentStore, index: VectorCollection
) -> FileResult:
    """Make one file visible: the SQLite swap, then the old version's vectors out.

    ``index`` is the vector collection of the document's collection, already holding ``rows``."""
    doc = prepared.document
    previous = store.find(doc["collection"], source=doc["source"])  # another ingest may have replaced it
    prepared.old_id = previous["id"] if previous else None
    twin = store.find(doc["collection"], content_hash=doc["content_hash"])
    if twin is not None:  # the same bytes came twice in this batch, or in another ingest meanwhile
        return FileResult(
            path=prepared.file.given,
            status="unchanged",
            id=twin["id"],
            items=twin["n_chunks"],
            message=f"{prepared.file.name}: identical to {twin['name']!r}, already added.",
        )
    try:
        old_chunks = store.replace(doc, rows, prepared.old_id)
    except BaseException:
        _quietly(lambda: index.delete(ids=[r["id"] for r in rows]))
        raise
    _quietly(lambda: index.delete(ids=old_chunks))  # leftovers are invisible and repaired later
    return _result(prepared, replaced=prepared.old_id is not None)


def _result(prepared: Prepared, *, replaced: bool) -> FileResult:
    doc = prepared.document
    what = f"{len(prepared.chunks)} chunk(s)"
    if doc["n_pages"]:
        what += f" from {doc['n_pages']} page(s)"
    if doc["encoding"] and doc["encoding"] not in ("utf-8", "ascii"):
        what += f", read as {doc['encoding']}"
    verb = "replaced the old version with" if replaced else "added"
    notes = "".join(f"; note: {n}" for n in prepared.notes)
    if prepared.file.renamed:
        notes += f"; the name {prepared.file.given!r} was unsafe, so it is shown as {prepared.file.name!r}"
    return FileResult(
        path=prepared.file.given,
        status="replaced" if replaced else "added",
        id=doc["id"],
        items=len(prepared.chunks),
        message=f"{prepared.file.name}: {verb} {what}{notes}.",
    )


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except EngineError:
        pass


def error_result(given: str, error: Exception) -> FileResult:
    return FileResult(path=given, status="error", message=str(error))


def unexpected_result(given: str, name: str, error: Exception) -> FileResult:
    """A per-file message for an exception no loader or store anticipated (the traceback is logged)."""
    log.error("adding %s failed unexpectedly", given, exc_info=error)
    return FileResult(
        path=given,
        status="error",
        message=f"{name}: could not be added ({type(error).__name__}: {error}). The other files were not "
        "affected; if this file opens elsewhere, this is a bug in Hearth (details are in the log).",
    )
