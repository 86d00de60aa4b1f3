"""Archival memory: facts and passages kept on purpose, searched by meaning.

Rows live in SQLite (the source of truth, with an FTS index for keyword fallback);
vectors live in a Chroma collection of their own and are rebuilt from the rows when
the collection is missing or was built by another embedding model.
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from typing import Any

from ..embeddings import TextEmbedder
from ..errors import EngineError, MemoryError_, NotFoundError
from ..store.conversations import new_id, now_iso
from ..store.db import Database
from ..types import Hit
from ..vectors import VectorCollection, VectorMatch, VectorStore, collection_name
from .provenance import Origin, record_write
from .recall import keywords

log = logging.getLogger("hearth.memory")

MAX_ENTRY_CHARS = 4000


@dataclass(frozen=True, kw_only=True)
class ArchivalEntry:
    id: str
    text: str
    created_at: str
    origin: str
    conversation_id: str = ""
    message_id: str = ""
    indexed: bool = False
    #: written by the automatic step after a turn (updated and deleted with its sources)
    auto: bool = False
    updated_at: str = ""
    #: cosine similarity to the query (search results only)
    score: float = 0.0

    def to_hit(self, score: float | None = None) -> Hit:
        source = (
            f"what the user said, remembered automatically {(self.updated_at or self.created_at)[:10]}"
            if self.auto
            else f"archival memory, saved {self.created_at[:10]} ({self.origin})"
        )
        return Hit(
            kind="memory",
            id=self.id,
            text=self.text,
            score=self.score if score is None else score,
            source=source,
            meta={
                "conversation_id": self.conversation_id,
                "message_id": self.message_id,
                "origin": self.origin,
                "auto": self.auto,
            },
        )


class ArchivalMemory:
    def __init__(self, database: Database, vectors: VectorStore, embedder: TextEmbedder):
        self._database = database
        self._vectors = vectors
        self._embedder = embedder
        self._collection: VectorCollection | None = None
        self._checked: VectorCollection | None = None  # the collection whose count matched the rows

    # writing

    def insert(self, text: str, *, origin: Origin, vector: list[float] | None = None) -> ArchivalEntry:
        """Save ``text``; the row is committed before its vector is written (never lost).

        An automatic memory (``origin.kind == "auto"``) also records its source message, so
        deleting that chat deletes the memory (unless another chat said it too).
        """
        text = _checked(text)
        entry_id, auto = new_id(), origin.kind == "auto"
        with self._database.tx() as db:
            write_id = record_write(
                db,
                action="archival_insert",
                target=f"archival:{entry_id}",
                args={"text": text},
                origin=origin,
            )
            db.table("memory_archival").insert(
                {
                    "id": entry_id,
                    "text": text,
                    "created_at": now_iso(),
                    "origin": origin.kind,
                    "conversation_id": origin.conversation_id,
                    "message_id": origin.message_id,
                    "write_id": write_id,
                    "indexed": 0,
                    "auto": int(auto),
                    "updated_at": now_iso(),
                }
            )
            if auto:
                _add_source(db, entry_id, origin, text)
        self._index([self.get(entry_id)], [vector] if vector is not None else None)
        return self.get(entry_id)

    def update(
        self, entry_id: str, text: str, *, origin: Origin, vector: list[float] | None = None
    ) -> ArchivalEntry:
        """Replace an entry's text (a user edit, or a newer statement of the same fact)."""
        entry, text = self.get(entry_id), _checked(text)
        with self._database.tx() as db:
            record_write(
                db,
                action="archival_update",
                target=f"archival:{entry.id}",
                args={"old_text": entry.text, "text": text},
                origin=origin,
            )
            # an edit by the user makes the memory theirs: it no longer goes with its source chats
            db.table("memory_archival").update(
                entry.id,
                {
                    "text": text,
                    "indexed": 0,
                    "updated_at": now_iso(),
                    "auto": int(entry.auto and origin.kind == "auto"),
                },
            )
            if origin.kind == "auto" and entry.auto:
                _add_source(db, entry.id, origin, text)
        self._index([self.get(entry.id)], [vector] if vector is not None else None)
        return self.get(entry.id)

    def add_source(self, entry_id: str, origin: Origin, text: str) -> None:
        """Another message said the same thing: keep the text, remember where else it came from."""
        with self._database.tx() as db:
            _add_source(db, entry_id, origin, text)

    def sources(self, entry_id: str) -> list[dict[str, Any]]:
        with self._database.read() as db:
            return list(
                db["memory_archival_sources"].rows_where(
                    "archival_id = ?", [entry_id], order_by="created_at, rowid"
                )
            )

    def forget_conversation(self, conversation_id: str) -> list[str]:
        """Drop that chat's sources of automatic memories; a memory left with none goes. Returns deleted ids."""
        with self._database.tx() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "select distinct archival_id from memory_archival_sources where conversation_id = ?",
                    [conversation_id],
                ).fetchall()
            ]
            db.table("memory_archival_sources").delete_where("conversation_id = ?", [conversation_id])
            gone, changed = [], []
            for entry_id in ids:
                rest = list(
                    db["memory_archival_sources"].rows_where(
                        "archival_id = ?", [entry_id], order_by="created_at desc, rowid desc"
                    )
                )
                if not rest:
                    db.table("memory_archival").delete_where("id = ? and auto = 1", [entry_id])
                    gone.append(entry_id)
                else:  # the text as the newest remaining chat said it
                    db.table("memory_archival").update(
                        entry_id,
                        {
                            "text": rest[0]["text"],
                            "indexed": 0,
                            "conversation_id": rest[0]["conversation_id"],
                            "message_id": rest[0]["message_id"],
                        },
                    )
                    changed.append(entry_id)
        try:
            self._col().delete(ids=gone)
        except EngineError as e:  # the rows are gone; a stale vector is skipped at search time
            log.warning("archival vectors of a deleted chat not removed yet: %s", e)
        self._index([self.get(i) for i in changed])
        return gone

    def nearest(self, vector: list[float], k: int = 1) -> list[ArchivalEntry]:
        """Entries closest to ``vector`` (cosine similarity in ``score``)."""
        if self.count() == 0:
            return []
        self._sync_index()
        return self._found(self._col().query(vector, k, metadata=False))

    def delete(self, entry_id: str, *, origin: Origin) -> None:
        entry = self.get(entry_id)
        with self._database.tx() as db:
            db.table("memory_archival").delete(entry.id)
            db.table("memory_archival_sources").delete_where("archival_id = ?", [entry.id])
            record_write(
                db,
                action="archival_delete",
                target=f"archival:{entry.id}",
                args={"text": entry.text},
                origin=origin,
            )
        try:
            self._col().delete(ids=[entry.id])
        except EngineError as e:  # the row is gone; a stale vector is skipped at search time
            log.warning("archival vector not deleted: %s", e)

    # reading

    def get(self, entry_id: str) -> ArchivalEntry:
        with self._database.read() as db:
            rows = list(db["memory_archival"].rows_where("id = ?", [entry_id]))
        if not rows:
            raise NotFoundError(f"No archival memory with id {entry_id!r}.")
        return _entry(rows[0])

    def _found(self, matches: builtins.list[VectorMatch]) -> builtins.list[ArchivalEntry]:
        """The entries of vector matches, best first, read in one query; a vector whose row
        was deleted (while Chroma was unreachable) is skipped."""
        if not matches:
            return []
        ids = [m.id for m in matches]
        with self._database.read() as db:
            marks = ",".join("?" * len(ids))
            rows = {r["id"]: r for r in db.query(f"select * from memory_archival where id in ({marks})", ids)}
        return [_with_score(_entry(rows[m.id]), m.score) for m in matches if m.id in rows]

    def list(self, *, limit: int = 100, offset: int = 0) -> list[ArchivalEntry]:
        with self._database.read() as db:
            rows = db["memory_archival"].rows_where(order_by="created_at desc", limit=limit, offset=offset)
            return [_entry(r) for r in rows]

    def count(self) -> int:
        with self._database.read() as db:
            return db["memory_archival"].count

    def search(
        self, query: str, *, k: int = 5, min_score: float = 0.0, vector: builtins.list[float] | None = None
    ) -> builtins.list[ArchivalEntry]:
        """Best matches by meaning; keyword matches when the vector index is unusable."""
        if not query.strip() or self.count() == 0:
            return []
        try:
            self._sync_index()
            vector = vector if vector is not None else self._embedder.embed_one(query)
            matches = self._col().query(vector, k, metadata=False)
        except EngineError as e:
            log.warning("archival vector search failed, using keywords: %s", e)
            return self.keyword_search(query, k=k)
        return self._found([m for m in matches if m.score >= min_score])

    def vectors_of(self, ids: builtins.list[str]) -> dict[str, builtins.list[float]]:
        return self._col().vectors(ids) if ids else {}

    def keyword_search(self, query: str, *, k: int = 5) -> builtins.list[ArchivalEntry]:
        words = keywords(query)
        if not words:
            return []
        sql = (
            "select a.*, -f.rank as score from memory_archival a join memory_archival_fts f on f.rowid = a.rowid"
            " where memory_archival_fts match ? order by f.rank limit ?"
        )
        with self._database.read() as db:
            cur = db.execute(sql, [" OR ".join(f'"{w}"' for w in words), k])
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        return [_with_score(_entry(row), float(row["score"])) for row in rows]

    # the vector index

    def rebuild_index(self) -> int:
        """Re-embed every row into a fresh collection; returns how many were indexed."""
        self._vectors.delete_collection(self._collection_name())
        self._collection = None
        with self._database.tx() as db:
            db.execute("update memory_archival set indexed = 0")
        return self._sync_index()

    def _sync_index(self) -> int:
        col = self._col()
        with self._database.read() as db:
            total = db["memory_archival"].count
            rows = list(db["memory_archival"].rows_where("indexed = 0"))
        # once per opened collection (a count costs as much as a search): was it lost, or made
        # by another model, since these rows were indexed?
        if col is not self._checked and col.count() < total - len(rows):
            with self._database.tx() as db:
                db.execute("update memory_archival set indexed = 0")
                rows = list(db["memory_archival"].rows_where())
        self._checked = col
        self._index([_entry(r) for r in rows])
        return len(rows)

    def _index(
        self,
        entries: builtins.list[ArchivalEntry],
        vectors: builtins.list[builtins.list[float]] | None = None,
    ) -> None:
        if not entries:
            return
        try:
            vectors = vectors or self._embedder.embed([e.text for e in entries])
            self._col().upsert(
                [e.id for e in entries], vectors, [{"created_at": e.created_at} for e in entries]
            )
        except EngineError as e:  # the rows are saved; the next search retries the vectors
            log.warning("archival memory saved but not indexed yet: %s", e)
            return
        with self._database.tx() as db:
            for entry in entries:  # a row deleted meanwhile is simply not matched
                db.execute("update memory_archival set indexed = 1 where id = ?", [entry.id])

    def close(self) -> None:
        self._collection = None  # the shared VectorStore closes the client itself

    def _collection_name(self) -> str:
        return collection_name("hearth-archival", self._embedder.name)

    def _col(self) -> VectorCollection:
        if self._collection is None:
            self._collection = self._vectors.collection(self._collection_name())
        return self._collection


def _entry(row: dict[str, Any]) -> ArchivalEntry:
    return ArchivalEntry(
        id=row["id"],
        text=row["text"] or "",
        created_at=row["created_at"],
        origin=row["origin"] or "",
        conversation_id=row["conversation_id"] or "",
        message_id=row["message_id"] or "",
        indexed=bool(row["indexed"]),
        auto=bool(row.get("auto")),
        updated_at=row.get("updated_at") or "",
    )


def _checked(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise MemoryError_("There is nothing to save: the text is empty.")
    if len(text) > MAX_ENTRY_CHARS:
        raise MemoryError_(
            f"An archival memory holds at most {MAX_ENTRY_CHARS} characters; this one has {len(text)}. "
            "Split it into smaller facts."
        )
    return text


def _add_source(db, entry_id: str, origin: Origin, text: str) -> None:
    known = db.execute(
        "select 1 from memory_archival_sources where archival_id = ? and message_id = ?",
        [entry_id, origin.message_id],
    ).fetchone()
    if known:  # the same message again (a regenerated answer): update its text only
        db.execute(
            "update memory_archival_sources set text = ? where archival_id = ? and message_id = ?",
            [text, entry_id, origin.message_id],
        )
        return
    db["memory_archival_sources"].insert(
        {
            "id": new_id(),
            "archival_id": entry_id,
            "conversation_id": origin.conversation_id,
            "message_id": origin.message_id,
            "text": text,
            "created_at": now_iso(),
        }
    )


def _with_score(entry: ArchivalEntry, score: float) -> ArchivalEntry:
    return ArchivalEntry(**{**entry.__dict__, "score": score})
