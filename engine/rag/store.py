"""SQLite side of the Documents feature: collections, documents, chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, NotFoundError
from ..store.conversations import now_iso
from ..store.db import Database
from . import keyword

_CHUNK_COLUMNS = (
    'c.id, c.document_id, c.collection, c.seq, c.text, c.heading, c.page, c.start, c."end", d.name, d.source'
)
MAX_COLLECTION_NAME = 64


@dataclass(frozen=True, kw_only=True)
class DocumentInfo:
    id: str
    collection: str
    name: str
    source: str
    kind: str
    size_bytes: int
    n_chunks: int
    n_pages: int
    encoding: str
    embed_model: str
    updated_at: str


def check_collection_name(name: str) -> str:
    """1-64 characters of letters, digits, spaces and ``_ - .``; returned stripped."""
    clean = (name or "").strip()
    ok = 0 < len(clean) <= MAX_COLLECTION_NAME and all(ch.isalnum() or ch in " _-." for ch in clean)
    if not ok:
        raise ConfigError(
            f"Invalid collection name {name!r}: use 1-{MAX_COLLECTION_NAME} letters, digits, spaces, '_', '-' or '.'.",
            field="collection",
        )
    return clean


class DocumentStore:
    def __init__(self, database: Database):
        self._database = database

    # collections

    def collections(self) -> list[str]:
        with self._database.read() as db:
            return [r["name"] for r in db["rag_collections"].rows_where(order_by="name")]

    def keyword_chunks(self, collection: str) -> set[str]:
        """Chunk ids of ``collection`` in the keyword index."""
        with self._database.read() as db:
            return keyword.indexed_chunks(db, collection)

    def ensure_collection(self, name: str) -> str:
        name = check_collection_name(name)
        with self._database.tx() as db:
            if not db["rag_collections"].count_where("name = ?", [name]):
                # start from the clock, not 0: a collection deleted and re-created under the same
                # name must never reuse a generation that another process has cached
                db.table("rag_collections").insert(
                    {"name": name, "created_at": now_iso(), "generation": time.time_ns()}
                )
        return name

    def generations(self, names: list[str] | None = None) -> dict[str, int]:
        with self._database.read() as db:
            rows = db["rag_collections"].rows_where(select="name, generation")
            gens = {r["name"]: r["generation"] for r in rows}
        return gens if names is None else {n: gens[n] for n in names if n in gens}

    def delete_collection(self, name: str) -> list[str]:
        """Remove a collection with its documents; return the removed chunk ids."""
        with self._database.tx() as db:
            if not db["rag_collections"].count_where("name = ?", [name]):
                raise NotFoundError(f"There is no collection named {name!r}.")
            ids = [r[0] for r in db.execute("select id from rag_chunks where collection = ?", [name])]
            keyword.delete_collection(db, name)
            db.table("rag_chunks").delete_where("collection = ?", [name])
            db.table("rag_documents").delete_where("collection = ?", [name])
            db.table("rag_collections").delete_where("name = ?", [name])
        return ids

    # documents

    def find(
        self, collection: str, *, source: str | None = None, content_hash: str | None = None
    ) -> dict | None:
        column, value = ("source", source) if source is not None else ("content_hash", content_hash)
        with self._database.read() as db:
            rows = list(
                db["rag_documents"].rows_where(
                    f"collection = ? and {column} = ?",
                    [collection, value],
                    select="id, collection, source, name, content_hash, n_chunks",
                )
            )
        return rows[0] if rows else None

    def replace(
        self, document: dict[str, Any], chunks: list[dict[str, Any]], old_id: str | None
    ) -> list[str]:
        """Atomically swap in a document and its chunks (and drop the old version).

        Returns the old version's chunk ids, whose vectors the caller then deletes.
        """
        now = now_iso()
        with self._database.tx() as db:
            old_chunks: list[str] = []
            if old_id is not None:
                old_chunks = [
                    r[0] for r in db.execute("select id from rag_chunks where document_id = ?", [old_id])
                ]
                keyword.delete_document(db, old_id)
                db.table("rag_chunks").delete_where("document_id = ?", [old_id])
                db.table("rag_documents").delete_where("id = ?", [old_id])
            db.table("rag_documents").insert({**document, "created_at": now, "updated_at": now}, replace=True)
            db.table("rag_chunks").insert_all(chunks, batch_size=500)
            keyword.add_chunks(db, chunks)  # same transaction: the keyword index is never out of step
            self._bump(db, document["collection"])
        return old_chunks

    def delete_document(self, document_id: str) -> tuple[str, list[str]]:
        """Remove a document; return its collection and chunk ids."""
        with self._database.tx() as db:
            rows = list(db["rag_documents"].rows_where("id = ?", [document_id], select="collection"))
            if not rows:
                raise NotFoundError(f"Document {document_id!r} does not exist (already deleted?).")
            ids = [r[0] for r in db.execute("select id from rag_chunks where document_id = ?", [document_id])]
            keyword.delete_document(db, document_id)
            db.table("rag_chunks").delete_where("document_id = ?", [document_id])
            db.table("rag_documents").delete_where("id = ?", [document_id])
            self._bump(db, rows[0]["collection"])
        return rows[0]["collection"], ids

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        where, params = ("collection = ?", [collection]) if collection else (None, [])
        fields = ", ".join(DocumentInfo.__dataclass_fields__)
        with self._database.read() as db:
            rows = db["rag_documents"].rows_where(where, params, select=fields, order_by="collection, name")
            return [
                DocumentInfo(**{k: (v if v is not None else _blank(k)) for k, v in r.items()}) for r in rows
            ]

    def document_text(self, document_id: str) -> str:
        with self._database.read() as db:
            row = db.execute("select text from rag_documents where id = ?", [document_id]).fetchone()
        if row is None:
            raise NotFoundError(f"Document {document_id!r} does not exist.")
        return row[0] or ""

    def count_chunks(self, collections: list[str] | None = None) -> int:
        with self._database.read() as db:
            if collections is None:
                return db["rag_chunks"].count
            marks = ",".join("?" * len(collections))
            return db.execute(
                f"select count(*) from rag_chunks where collection in ({marks})", collections
            ).fetchone()[0]

    # chunks

    def chunks(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Chunk rows (with their document's name and source) by id; unknown ids are absent."""
        out: dict[str, dict[str, Any]] = {}
        with self._database.read() as db:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                cur = db.execute(
                    f"select {_CHUNK_COLUMNS} from rag_chunks c join rag_documents d on d.id = c.document_id "
                    f"where c.id in ({marks})",
                    part,
                )
                cols = [c[0] for c in cur.description]
                out.update({r[0]: dict(zip(cols, r)) for r in cur.fetchall()})
        return out

    def iter_chunks(self, collection: str | None = None, *, batch: int = 2000) -> Iterator[dict[str, Any]]:
        """Every chunk, in a stable order, read in batches so memory stays flat."""
        last = ""
        where = "and c.collection = ?" if collection else ""
        while True:
            params = [last, *([collection] if collection else []), batch]
            with self._database.read() as db:
                cur = db.execute(
                    f"select {_CHUNK_COLUMNS} from rag_chunks c join rag_documents d on d.id = c.document_id "
                    f"where c.id > ? {where} order by c.id limit ?",
                    params,
                )
                cols = [c[0] for c in cur.description]
                rows = [dict(zip(cols, r)) for r in cur.fetchall()]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]["id"]

    @staticmethod
    def _bump(db, collection: str) -> None:
        db.execute("update rag_collections set generation = generation + 1 where name = ?", [collection])


def _blank(field: str) -> Any:
    return "" if DocumentInfo.__dataclass_fields__[field].type == "str" else 0
