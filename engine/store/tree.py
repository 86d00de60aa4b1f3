"""Conversations as trees: siblings, switching the path shown, forking.

Every message points at the one it follows (``parent_id``). A regenerate adds a sibling
answer, an edit a sibling question; nothing is ever dropped. The ``active`` flag marks the
path from the first message to the leaf shown: the prompt of the next turn, and what every
older reader of ``messages`` (memory, search, export) takes as the conversation.
``chosen_at`` counts when each message was last put on that path, so switching to a sibling
brings back the branch last seen below it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError
from .conversations import ConversationStore, StoredConversation, StoredMessage, new_id, now_iso
from .db import Database
from .placement import set_path


@dataclass(frozen=True, kw_only=True)
class BranchPoint:
    """Where one message of the path shown stands among its siblings."""

    message_id: str
    role: str
    position: int  # 1-based
    total: int
    previous_id: str | None
    next_id: str | None


class Branches:
    """Sibling navigation and forks over the conversation store."""

    def __init__(self, database: Database, conversations: ConversationStore):
        self._database = database
        self._conversations = conversations

    def siblings(self, message_id: str) -> list[StoredMessage]:
        """The message and its alternatives (same parent), oldest first."""
        message = self._conversations.message(message_id)
        return [
            m
            for m in self._conversations.messages(message.conversation_id, include_inactive=True)
            if m.parent_id == message.parent_id
        ]

    def branch_points(self, conversation_id: str) -> list[BranchPoint]:
        """For each message on the path shown: its place among its siblings."""
        every = self._conversations.messages(conversation_id, include_inactive=True)
        groups: dict[str | None, list[StoredMessage]] = {}
        for m in every:
            groups.setdefault(m.parent_id, []).append(m)
        points = []
        for m in every:
            if not m.active:
                continue
            group = groups[m.parent_id]
            i = next(n for n, s in enumerate(group) if s.id == m.id)
            points.append(
                BranchPoint(
                    message_id=m.id,
                    role=m.role,
                    position=i + 1,
                    total=len(group),
                    previous_id=group[i - 1].id if i > 0 else None,
                    next_id=group[i + 1].id if i + 1 < len(group) else None,
                )
            )
        return points

    def switch(self, message_id: str) -> list[StoredMessage]:
        """Show ``message_id``'s branch: its ancestors, it, and the branch last seen below it.

        Persistent: the next turn's prompt is this path. Returns the new path.
        """
        message = self._conversations.message(message_id)
        with self._database.tx() as db:
            set_path(db, message.conversation_id, message_id, remember=True)
        return self._conversations.messages(message.conversation_id)

    def fork(self, message_id: str, *, title: str | None = None) -> StoredConversation:
        """A new conversation holding the path up to and including ``message_id``."""
        message = self._conversations.message(message_id)
        source = self._conversations.get(message.conversation_id)
        path = ancestry(self._conversations.messages(source.id, include_inactive=True), message_id)
        conversation = {
            "id": new_id(),
            "title": title or f"Fork of {source.title}"[:120],
            "system_prompt": source.system_prompt,
            "collections": json.dumps(list(source.collections)),
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        with self._database.tx() as db:
            db.table("conversations").insert(conversation)
            rows = {r["id"]: r for r in db.table("messages").rows_where("conversation_id = ?", [source.id])}
            parent: str | None = None
            for seq, m in enumerate(path, 1):
                copy = {**rows[m.id], "id": new_id(), "conversation_id": conversation["id"]}
                copy.update(seq=seq, parent_id=parent, active=1, chosen_at=seq)
                db.table("messages").insert(copy)
                parent = copy["id"]
        return self._conversations.get(conversation["id"])

    # files (engine/store/transfer.py)

    def export_json(self, conversation_id: str) -> dict[str, Any]:
        """The conversation with every branch, in the versioned file format."""
        from .transfer import export_conversation

        return export_conversation(self._database, conversation_id)

    def export_markdown(self, conversation_id: str) -> str:
        """The path shown, as Markdown."""
        from .transfer import export_markdown

        return export_markdown(self._database, conversation_id)

    def import_json(self, source: bytes | str) -> StoredConversation:
        """A new conversation from an exported file (ConfigError, nothing saved, if refused)."""
        from .transfer import import_conversation

        return import_conversation(self._database, source)


def ancestry(messages: Iterable[StoredMessage], message_id: str) -> list[StoredMessage]:
    """The path from the first message down to ``message_id``."""
    by_id = {m.id: m for m in messages}
    if message_id not in by_id:
        raise NotFoundError(f"Message {message_id!r} does not exist.")
    path: list[StoredMessage] = []
    current: str | None = message_id
    while current is not None and current in by_id and len(path) <= len(by_id):
        path.append(by_id[current])
        current = by_id[current].parent_id
    return path[::-1]
