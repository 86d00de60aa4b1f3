"""Conversations and their messages."""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import NotFoundError
from .db import Database
from .placement import set_path, tree_place


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class StoredConversation:
    id: str
    title: str
    system_prompt: str
    collections: list[str]
    created_at: str
    updated_at: str


@dataclass(frozen=True, kw_only=True)
class StoredMessage:
    id: str
    conversation_id: str
    seq: int
    role: str
    content: str
    created_at: str
    active: bool = True
    model: str | None = None
    config: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    finish_reason: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    #: for a user message: the text the model was sent, when it differs from ``content``
    prompt_content: str | None = None
    #: the message this one follows (None: the first of a branch at the start); see store/tree.py
    parent_id: str | None = None

    @property
    def sent(self) -> str:
        """What the model saw for this message (the question plus any quoted references)."""
        return self.prompt_content if self.prompt_content is not None else self.content


def _conversation(row: dict[str, Any]) -> StoredConversation:
    return StoredConversation(
        id=row["id"],
        title=row["title"] or "",
        system_prompt=row["system_prompt"] or "",
        collections=json.loads(row["collections"] or "[]"),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _message(row: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        seq=row["seq"],
        role=row["role"],
        content=row["content"] or "",
        created_at=row["created_at"],
        active=bool(row["active"]),
        model=row["model"],
        config=json.loads(row["config"]) if row["config"] else None,
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cached_tokens=row["cached_tokens"],
        ttft_s=row["ttft_s"],
        tokens_per_s=row["tokens_per_s"],
        finish_reason=row["finish_reason"],
        sources=json.loads(row["sources"]) if row["sources"] else [],
        prompt_content=row.get("prompt_content"),
        parent_id=row.get("parent_id"),
    )


class ConversationStore:
    def __init__(self, database: Database):
        self._database = database
        #: called with the id after a conversation is deleted (memory forgets what it held of it)
        self._delete_hooks: list[Callable[[str], None]] = []

    def on_delete(self, hook: Callable[[str], None]) -> None:
        self._delete_hooks.append(hook)

    # conversations

    def create(
        self, *, title: str = "New chat", system_prompt: str = "", collections: list[str] | None = None
    ) -> StoredConversation:
        row = {
            "id": new_id(),
            "title": title,
            "system_prompt": system_prompt,
            "collections": json.dumps(collections or []),
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        with self._database.tx() as db:
            db.table("conversations").insert(row)
        return _conversation(row)

    def get(self, conversation_id: str) -> StoredConversation:
        with self._database.read() as db:
            rows = list(db.table("conversations").rows_where("id = ?", [conversation_id]))
        if not rows:
            raise NotFoundError(f"Conversation {conversation_id!r} does not exist.")
        return _conversation(rows[0])

    def list(self, query: str = "", limit: int = 200) -> list[StoredConversation]:
        """Newest first; ``query`` matches titles (substring) or message text (full-text)."""
        with self._database.read() as db:
            if not query.strip():
                rows = db.table("conversations").rows_where(order_by="updated_at desc", limit=limit)
                return [_conversation(r) for r in rows]
            like = f"%{query.strip()}%"
            sql = (
                "select * from conversations where title like ? or id in ("
                " select m.conversation_id from messages m"
                " join messages_fts f on f.rowid = m.rowid where messages_fts match ?)"
                " order by updated_at desc limit ?"
            )
            cursor = db.execute(sql, [like, fts_query(query), limit])
            cols = [c[0] for c in cursor.description]
            return [_conversation(dict(zip(cols, r))) for r in cursor.fetchall()]

    def update(self, conversation_id: str, **fields: Any) -> StoredConversation:
        allowed = {"title", "system_prompt", "collections"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {bad}")
        if "collections" in fields:
            fields["collections"] = json.dumps(list(fields["collections"]))
        self.get(conversation_id)
        with self._database.tx() as db:
            db.table("conversations").update(conversation_id, {**fields, "updated_at": now_iso()})
        return self.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        self.get(conversation_id)
        with self._database.tx() as db:
            db.table("messages").delete_where("conversation_id = ?", [conversation_id])
            db.table("conversations").delete(conversation_id)
        for hook in self._delete_hooks:
            hook(conversation_id)

    # messages

    def add_message(self, conversation_id: str, role: str, content: str, **meta: Any) -> StoredMessage:
        for key in ("config", "sources"):
            if key in meta and not isinstance(meta[key], str):
                meta[key] = json.dumps(meta[key])
        with self._database.tx() as db:
            if not db.table("conversations").count_where("id = ?", [conversation_id]):
                raise NotFoundError(f"Conversation {conversation_id!r} does not exist.")
            seq = db.execute(
                "select coalesce(max(seq), 0) + 1 from messages where conversation_id = ?",
                [conversation_id],
            ).fetchone()[0]
            row = {
                "id": new_id(),
                "conversation_id": conversation_id,
                "seq": seq,
                "role": role,
                "content": content,
                "active": 1,
                "created_at": now_iso(),
                **meta,
            }
            row.update(tree_place(db, conversation_id, row.get("parent_id")))
            db.table("messages").insert(row, alter=False)
            if "parent_id" in meta:  # placed off the path shown (it changed meanwhile): show it
                set_path(db, conversation_id, row["id"], remember=False)
            db.table("conversations").update(conversation_id, {"updated_at": now_iso()})
        return self.message(row["id"])

    def message(self, message_id: str) -> StoredMessage:
        with self._database.read() as db:
            rows = list(db.table("messages").rows_where("id = ?", [message_id]))
        if not rows:
            raise NotFoundError(f"Message {message_id!r} does not exist.")
        return _message(rows[0])

    def messages(
        self, conversation_id: str, *, include_inactive: bool = False
    ) -> builtins.list[StoredMessage]:
        where = "conversation_id = ?" + ("" if include_inactive else " and active = 1")
        with self._database.read() as db:
            rows = db.table("messages").rows_where(where, [conversation_id], order_by="seq")
            return [_message(r) for r in rows]

    def set_prompt_content(self, message_id: str, text: str | None) -> None:
        """Record what the model was sent for a user message (None: its content as typed)."""
        with self._database.tx() as db:
            db.table("messages").update(message_id, {"prompt_content": text})

    def deactivate(self, message_ids: builtins.list[str]) -> None:
        """Hide messages from the conversation (regenerate, edit); they stay searchable."""
        with self._database.tx() as db:
            for mid in message_ids:
                db.table("messages").update(mid, {"active": 0})

    def show_unless_answered(self, shown: builtins.list[str]) -> None:
        """Show ``shown`` (a conversation's path) again, unless its last question now has an
        answer: a regenerate hides the answer it replaces before it starts, and one that gave
        none (left before its first word, or failed) must not leave the question bare."""
        try:
            conversation_id = self.message(shown[0]).conversation_id if shown else ""
        except NotFoundError:  # the conversation was deleted meanwhile
            return
        path = self.messages(conversation_id)
        if path and path[-1].role == "assistant":
            return
        hidden = [mid for mid in shown if mid not in {m.id for m in path}]  # a write re-indexes a row
        with self._database.tx() as db:  # (a row deleted meanwhile is simply not there to update)
            for mid in hidden:
                db.execute("update messages set active = 1 where id = ?", [mid])

    def search_messages(
        self, query: str, *, limit: int = 20, conversation_id: str | None = None
    ) -> builtins.list[StoredMessage]:
        """Full-text search over every message ever written, best match first."""
        if not query.strip():
            return []
        sql = (
            "select m.* from messages m join messages_fts f on f.rowid = m.rowid"
            " where messages_fts match ?"
            + (" and m.conversation_id = ?" if conversation_id else "")
            + " order by f.rank limit ?"
        )
        params: builtins.list[Any] = [fts_query(query)]
        if conversation_id:
            params.append(conversation_id)
        params.append(limit)
        with self._database.read() as db:
            cur = db.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [_message(dict(zip(cols, r))) for r in cur.fetchall()]


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 query: each word quoted, any word may match."""
    words = ["".join(ch for ch in w if ch.isalnum() or ch in "_-") for w in text.split()]
    words = [w for w in words if w]
    if not words:
        return '""'
    return " OR ".join(f'"{w}"' for w in words)
