"""Schema of the Documents feature (the ``hearth.rag`` migration set).

SQLite holds every document's extracted text and its chunks: the source of truth.
The Chroma vectors are rebuilt from these tables; the keyword index (FTS5) lives beside them.
Never edit a migration that has shipped; add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from ..library import DEFAULT_COLLECTION
from ..store.conversations import now_iso

rag = Migrations("hearth.rag")


@rag(name="0001_collections_documents_chunks")
def _collections_documents_chunks(db: Database) -> None:
    _collections_table(db)
    _documents_table(db)
    _chunks_table(db)
    db.table("rag_collections").insert({"name": DEFAULT_COLLECTION, "created_at": now_iso(), "generation": 0})


# The tables of 0001, one function each (the migration above runs them in this order).


def _collections_table(db: Database) -> None:
    db.table("rag_collections").create(
        {
            "name": str,
            "created_at": str,
            # bumped in the same transaction as every change to the collection's chunks,
            # so a keyword index built at an older generation is known to be stale
            "generation": int,
        },
        pk="name",
        defaults={"generation": 0},
    )


def _documents_table(db: Database) -> None:
    db.table("rag_documents").create(
        {
            "id": str,  # derived from (collection, content hash): the same bytes get the same id
            "collection": str,
            "source": str,  # identity of the file within the collection (absolute path or upload name)
            "name": str,  # file name shown to the user and cited
            "kind": str,  # pdf, docx, html, markdown, text, csv, json, code
            "content_hash": str,  # sha256 of the file's bytes
            "size_bytes": int,
            "n_chunks": int,
            "n_pages": int,
            "encoding": str,  # detected text encoding, when the file was text
            "text": str,  # the full extracted text; chunk offsets point into it
            "embed_model": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("collection", "rag_collections", "name")],
    )
    db.table("rag_documents").create_index(["collection", "source"], unique=True)
    db.table("rag_documents").create_index(["collection", "content_hash"], unique=True)


def _chunks_table(db: Database) -> None:
    db.table("rag_chunks").create(
        {
            "id": str,
            "document_id": str,
            "collection": str,
            "seq": int,
            "text": str,  # exactly documents.text[start:end]
            "heading": str,  # the headings (or CSV header) above this chunk, for context
            "page": int,  # 1-based PDF page, else null
            "start": int,
            "end": int,
            "n_tokens": int,
        },
        pk="id",
        foreign_keys=[("document_id", "rag_documents", "id")],
    )
    db.table("rag_chunks").create_index(["document_id", "seq"])
    db.table("rag_chunks").create_index(["collection"])


@rag(name="0002_embedding_cache")
def _embedding_cache(db: Database) -> None:
    # vectors by content: the same text under the same model is never embedded twice
    # (a re-added file with a small edit, boilerplate shared by many files, a re-index)
    db.table("rag_vector_cache").create({"key": str, "vector": bytes}, pk="key")


@rag(name="0003_keyword_fts5")
def _keyword_fts5(db: Database) -> None:
    """The keyword index moves into SQLite (two FTS5 tables: words, CJK character pairs), filled
    from the chunks already there; it is
    written with the chunks from now on (bm25s indexes under data_dir/bm25 are no longer read)."""
    from . import keyword

    keyword.create_tables(db)
    keyword.rebuild(db)


@rag(name="0004_chunk_section")
def _chunk_section(db: Database) -> None:
    """Each chunk's section: the heading path it lies in, its own leading heading included, for
    citations (``heading`` leaves that one out). Older chunks keep null: citations fall back to
    ``heading``."""
    db.table("rag_chunks").add_column("section", str)


@rag(name="0005_watched_folders")
def _watched_folders(db: Database) -> None:
    # folders the app keeps in sync with a collection (Documents tab); survives restarts
    db.table("rag_watched_folders").create(
        {"folder": str, "collection": str, "added_at": str},
        pk="folder",
        foreign_keys=[("collection", "rag_collections", "name")],
    )
