"""MemoryService: the memory tiers behind one object, and ChatService's MemoryHooks.

Tiers: ``core`` (blocks in every prompt), ``recall`` (every message, FTS5 and dates),
``archival`` (kept facts, vectors in Chroma). ``summaries`` holds each conversation's
running summary; ``log`` every write's provenance. Writes from the user, the command
line and the model all go through ``apply``; the model's writes after it read
retrieved text go through ``propose`` and wait for ``approve``.
"""

from __future__ import annotations

import logging
from typing import Any

from ..backends.base import Backend
from ..embeddings import TextEmbedder
from ..errors import EngineError, MemoryError_
from ..models import ModelManager
from ..prompt import PromptPlan
from ..store import ConversationStore, Database, StoredMessage
from ..turn import Contribution, Turn, in_background
from ..types import Hit
from ..vectors import VectorStore
from .archival import ArchivalMemory
from .auto import AutoMemory
from .context import ContextManager, MemoryOptions
from .core import Block, CoreMemory
from .message_vectors import MessageVectors, QueryVectors
from .provenance import USER, Origin, WriteLog
from .recall import RecallMemory
from .retrieve import MemoryRetriever
from .summary import SummaryStore
from .tools import ToolBox

log = logging.getLogger(__name__)

#: memory hit kinds (Hit.kind) as stored in an answer's sources
MEMORY_KINDS = ("memory", "recall")


class MemoryService:
    def __init__(
        self,
        *,
        database: Database,
        conversations: ConversationStore,
        models: ModelManager,
        vectors: VectorStore,
        embedder: TextEmbedder,
        options: MemoryOptions | None = None,
    ):
        self.database = database
        self.conversations = conversations
        self.models = models
        self.core = CoreMemory(database)
        self.recall = RecallMemory(database)
        self.archival = ArchivalMemory(database, vectors, embedder)
        #: one embedding per distinct text, shared by archival search, message vectors and indexing
        self.queries = QueryVectors(embedder)
        self.messages = MessageVectors(database, vectors, self.queries)
        self.auto = AutoMemory(self.archival, self.queries)
        self.summaries = SummaryStore(database)
        self.log = WriteLog(database)
        self.toolbox = ToolBox()
        retriever = MemoryRetriever(
            archival=self.archival, recall=self.recall, messages=self.messages, queries=self.queries
        )
        self.context = ContextManager(
            core=self.core,
            summaries=self.summaries,
            retriever=retriever,
            toolbox=self.toolbox,
            tools=self,
            options=options or MemoryOptions(),
        )
        # deleting a chat deletes its memory, whoever deletes it (page, CLI, API)
        conversations.on_delete(self.forget_conversation)

    # the turn's provider (engine/turn.py): ChatService calls these

    @property
    def provider_name(self) -> str:
        return "memory"

    def contribute(self, turn: Turn) -> Contribution:
        return self.context.contribute(turn)

    def prefetch(self, query: str) -> None:
        """Start embedding ``query`` in the background and return at once: a new question's
        vector (about 4 ms) is made while the chat saves the message, before ``contribute``."""
        in_background(self.context.retriever.prefetch, query)

    def after_answer(
        self, turn: Turn, plan: PromptPlan, answer: StoredMessage, backend: Backend | None
    ) -> None:
        """After the answer is saved: index the new messages, keep automatic memories, then summarize.

        Automatic memories first: their model request continues this turn's prompt, so it
        reuses the KV cache, which a summary request would replace.
        """
        self._index_messages()
        if self.auto_enabled:
            try:
                self.auto.capture(
                    turn.conversation,
                    turn.user_message,
                    backend=backend,
                    prompt=plan.messages,
                    answer=answer.content,
                )
            except EngineError as e:
                log.warning("automatic memory skipped this turn: %s", e)
        if backend is not None:  # no model loaded: the summary waits for the next turn
            self.context.summarize(turn, plan, answer, backend)

    def _index_messages(self) -> None:
        """Index this turn's user message by meaning (its question vector is reused when it can be)."""
        try:
            self.messages.check_collection()
            self.messages.index_pending()
        except EngineError as e:  # indexed on a later turn, or by `memory reindex`
            log.warning("message vectors not updated this turn: %s", e)

    # automatic memories

    @property
    def auto_enabled(self) -> bool:
        """Automatic memories are on unless started with --no-auto-memory or switched off in the Memory tab."""
        return self.context.options.auto and self._setting("auto_memory", "1") == "1"

    def set_auto(self, enabled: bool) -> bool:
        if enabled and not self.context.options.auto:
            raise MemoryError_(
                "Hearth was started with --no-auto-memory; restart without it to turn this on."
            )
        with self.database.tx() as db:
            db.table("memory_settings").upsert(
                {"key": "auto_memory", "value": "1" if enabled else "0"}, pk="key"
            )
        return self.auto_enabled

    def _setting(self, key: str, default: str) -> str:
        with self.database.read() as db:
            row = db.execute("select value from memory_settings where key = ?", [key]).fetchone()
        return row[0] if row else default

    def reindex(self) -> dict[str, int]:
        """Rebuild both vector indexes from SQLite (new embedding model, lost or damaged index)."""
        return {"archival": self.archival.rebuild_index(), "messages": self.messages.rebuild()}

    # writes

    def apply(self, action: str, args: dict[str, Any], *, origin: Origin) -> str:
        """Perform a write now; returns a short description of what changed."""
        conversation_id = origin.conversation_id or None
        if action == "block_append":
            block = self.core.append(
                args["label"], args["content"], conversation_id=conversation_id, origin=origin
            )
            return f"Added to '{block.label}' ({block.fill})."
        if action == "block_replace":
            block = self.core.replace(
                args["label"],
                args["old_content"],
                args["new_content"],
                conversation_id=conversation_id,
                origin=origin,
            )
            return f"Updated '{block.label}' ({block.fill})."
        if action == "block_set":
            block = self.core.set(
                args["label"], args["value"], conversation_id=conversation_id, origin=origin
            )
            return f"Set '{block.label}' ({block.fill})."
        if action == "archival_insert":
            entry = self.archival.insert(args["text"], origin=origin)
            return f"Saved to archival memory as {entry.id[:8]}."
        raise MemoryError_(f"Unknown memory action {action!r}.")

    def propose(self, action: str, args: dict[str, Any], *, origin: Origin, note: str) -> str:
        """Queue a write for the user's approval; returns the pending write's id."""
        target = f"block:{args['label']}" if "label" in args else "archival:new"
        return self.log.record(
            action=action, target=target, args=args, origin=origin, status="pending", note=note
        )

    def approve(self, write_id: str) -> str:
        """Apply a pending write on the user's say-so (recorded as a user write naming the suggestion)."""
        record = self.log.get(write_id)
        if record.status != "pending":
            raise MemoryError_(
                f"Memory write {write_id} is {record.status}, not pending; nothing to approve."
            )
        origin = Origin(
            kind="user",
            conversation_id=record.conversation_id,
            message_id=record.message_id,
            note=f"approved suggestion {write_id}",
        )
        result = self.apply(record.action, record.args, origin=origin)
        with self.database.tx() as db:
            self.log.resolve(db, write_id, "approved", f"approved by the user: {result}")
        return result

    def reject(self, write_id: str) -> None:
        with self.database.tx() as db:
            self.log.resolve(db, write_id, "rejected", "rejected by the user")

    def log_failed_call(self, output: str, error: str, *, origin: Origin) -> str:
        """Keep a record of a tool call that could not run (malformed, unknown tool, refused)."""
        return self.log.record(
            action="tool_call",
            target="",
            args={"output": output[:2000]},
            origin=origin,
            status="failed",
            note=error,
        )

    # user-facing reads

    def set_block(
        self, label: str, value: str, *, conversation_id: str | None = None, origin: Origin = USER
    ) -> Block:
        return self.core.set(label, value, conversation_id=conversation_id, origin=origin)

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        start: str | None = None,
        end: str | None = None,
        conversation_id: str | None = None,
    ) -> list[Hit]:
        """Archival memories and messages by meaning and keywords (best first); with dates or a chat, messages only."""
        if query.strip() and not (start or end or conversation_id):
            return self.context.retriever.candidates(query, "", 0, k=k)[:k]
        return [
            r.to_hit()
            for r in self.recall.search(query, start=start, end=end, conversation_id=conversation_id, limit=k)
        ]

    def memories_for_answer(self, message_id: str) -> list[dict[str, Any]]:
        """The memory hits an assistant answer was given (as stored with it)."""
        message = self.conversations.message(message_id)
        return [h for h in message.sources if h.get("kind") in MEMORY_KINDS]

    def overview(self, conversation_id: str | None = None) -> dict[str, Any]:
        """Everything ``memory show`` prints: blocks with fill levels, counts, pending writes."""
        return {
            "blocks": [
                {
                    "label": b.label,
                    "value": b.value,
                    "chars": len(b.value),
                    "limit": b.limit,
                    "fill": b.fill,
                    "scope": b.conversation_id or "global",
                    "updated_at": b.updated_at,
                    "updated_by": b.updated_by,
                }
                for b in self.core.blocks(conversation_id)
            ],
            "archival_count": self.archival.count(),
            "recall_count": self.recall.count(),
            "summaries": len(self.summaries.all()),
            "pending": [
                {"id": w.id, "action": w.action, "args": w.args, "origin": w.origin, "note": w.note}
                for w in self.log.pending()
            ],
        }

    def forget_conversation(self, conversation_id: str) -> None:
        """Everything memory holds of a deleted chat goes with it.

        Its summary, its own core blocks, its message vectors, the automatic memories only
        it gave (one that other chats said too keeps their version), and its rows in the
        write log (pending suggestions included). Archival facts someone chose to keep stay,
        with the log row that says where they came from.
        """
        self.archival.forget_conversation(conversation_id)
        with self.database.tx() as db:
            db.table("memory_summaries").delete_where("conversation_id = ?", [conversation_id])
            db.table("memory_blocks").delete_where("conversation_id = ?", [conversation_id])
            db.execute(
                "delete from memory_writes where conversation_id = ? and id not in"
                " (select write_id from memory_archival where auto = 0 and write_id is not null)",
                [conversation_id],
            )
        self.messages.forget_conversation(conversation_id)

    def close(self) -> None:
        self.archival.close()
        self.messages.close()
