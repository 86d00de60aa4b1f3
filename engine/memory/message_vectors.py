"""Vectors of past user messages, so recall finds what the user said in other words.

The ``messages`` table stays the source of truth: ``memory_message_vectors`` lists the
messages whose vector is in the Chroma collection, and ``rebuild`` recreates the
collection from SQLite. Messages are embedded after a turn (never while the user
waits for the first token); a query's vector comes from the turn's ``QueryVectors``
cache, so the user message just asked is indexed without embedding it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..embeddings import TextEmbedder
from ..errors import EngineError
from ..store.conversations import now_iso
from ..store.db import Database
from ..vectors import VectorCollection, VectorStore, collection_name

log = logging.getLogger(__name__)

#: messages embedded per call of ``index_pending`` (a large old history is caught up over several turns)
INDEX_BATCH = 64
#: characters of a message that are embedded (MiniLM reads about 256 tokens anyway)
EMBED_CHARS = 1000


class QueryVectors:
    """Questions embedded as questions (the model's query prefix), through the embedder's LRU:
    one embedding per distinct text, shared by both memory tiers and by document search."""

    def __init__(self, embedder: TextEmbedder):
        self._embedder = embedder

    @property
    def embedder(self) -> TextEmbedder:
        return self._embedder

    def get(self, text: str) -> list[float]:
        return self._embedder.embed_queries([text.strip()])[0]

    def reusable_as_passage(self, text: str) -> list[float] | None:
        """The cached question vector of ``text``, when it equals its passage vector (the model
        embeds questions and passages alike); None otherwise."""
        query, passage = self._embedder.prefixes()
        return self._embedder.cached_query(text.strip()) if query == passage else None


@dataclass(frozen=True)
class MessageMatch:
    message_id: str
    conversation_id: str
    #: cosine similarity to the query
    score: float


class MessageVectors:
    def __init__(self, database: Database, vectors: VectorStore, queries: QueryVectors):
        self._database = database
        self._vectors = vectors
        self._queries = queries
        self._collection: VectorCollection | None = None

    def count(self) -> int:
        with self._database.read() as db:
            return db["memory_message_vectors"].count

    def search(
        self, vector: Sequence[float], *, k: int, exclude_after: tuple[str, int] | None = None
    ) -> list[MessageMatch]:
        """Active user messages closest to ``vector``, leaving out those still in the window."""
        if not self.count():
            return []
        matches = self._col().query(vector, k + 8, metadata=False)  # room for the ones filtered out below
        if not matches:
            return []
        ids = [m.id for m in matches]
        with self._database.read() as db:
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"select id, conversation_id, seq from messages where active = 1 and id in ({marks})", ids
            ).fetchall()
        live = {r[0]: (r[1], r[2]) for r in rows}  # a deleted message's stale vector is skipped
        found = []
        for m in matches:
            if m.id not in live:
                continue
            conversation_id, seq = live[m.id]
            if exclude_after and conversation_id == exclude_after[0] and seq > exclude_after[1]:
                continue
            found.append(MessageMatch(m.id, conversation_id, m.score))
        return found[:k]

    def vectors_of(self, ids: list[str]) -> dict[str, list[float]]:
        return self._col().vectors(ids) if ids else {}

    def index_pending(self, limit: int = INDEX_BATCH) -> int:
        """Embed user messages that have no vector yet (oldest first); returns how many."""
        with self._database.read() as db:
            rows = db.execute(
                "select m.id, m.conversation_id, m.content from messages m left join memory_message_vectors v"
                " on v.message_id = m.id where v.message_id is null and m.role = 'user' and m.content != ''"
                " order by m.created_at limit ?",
                [limit],
            ).fetchall()
        if not rows:
            return 0
        texts = [r[2][:EMBED_CHARS] for r in rows]
        known = [self._queries.reusable_as_passage(t) for t in texts]
        missing = [t for t, v in zip(texts, known) if v is None]
        fresh = iter(self._queries.embedder.embed(missing)) if missing else iter(())
        vectors = [v if v is not None else next(fresh) for v in known]
        self._col().upsert([r[0] for r in rows], vectors, [{"conversation_id": r[1]} for r in rows])
        with self._database.tx() as db:
            db.table("memory_message_vectors").insert_all(
                [{"message_id": r[0], "conversation_id": r[1], "indexed_at": now_iso()} for r in rows],
                replace=True,
            )
        return len(rows)

    def index_all(self) -> int:
        total = 0
        while n := self.index_pending(limit=256):
            total += n
        return total

    def rebuild(self) -> int:
        """Drop the collection and embed every user message again (new embedder, lost index)."""
        self._vectors.delete_collection(self._collection_name())
        self._collection = None
        with self._database.tx() as db:
            db.execute("delete from memory_message_vectors")
        return self.index_all()

    def forget_conversation(self, conversation_id: str) -> None:
        with self._database.tx() as db:
            db.table("memory_message_vectors").delete_where("conversation_id = ?", [conversation_id])
        try:
            self._col().delete(where={"conversation_id": conversation_id})
        except EngineError as e:  # the rows are gone; stale vectors are skipped at search time
            log.warning("message vectors of a deleted chat not removed yet: %s", e)

    def check_collection(self) -> None:
        """A lost collection (or one from another embedder) is refilled from SQLite."""
        if self.count() and self._col().count() == 0:
            with self._database.tx() as db:
                db.execute("delete from memory_message_vectors")

    def _collection_name(self) -> str:
        return collection_name("hearth-messages", self._queries.embedder.name)

    def _col(self) -> VectorCollection:
        if self._collection is None:
            self._collection = self._vectors.collection(self._collection_name())
        return self._collection

    def close(self) -> None:
        self._collection = None
