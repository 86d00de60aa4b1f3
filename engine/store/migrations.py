"""Core schema: conversations, messages (with full-text search) and presets.

Never edit a migration that has shipped; add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

core = Migrations("hearth.core")


@core(name="0001_conversations_messages")
def _conversations_messages(db: Database) -> None:
    db.table("conversations").create(
        {
            "id": str,
            "title": str,
            "system_prompt": str,
            "collections": str,  # JSON list of document collections this chat draws on
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("messages").create(
        {
            "id": str,
            "conversation_id": str,
            "seq": int,
            "role": str,
            "content": str,
            "active": int,  # 0 once replaced by a regenerate or an edit (kept, never lost)
            "created_at": str,
            "model": str,
            "config": str,  # JSON GenerationConfig used for an assistant message
            "prompt_tokens": int,
            "completion_tokens": int,
            "cached_tokens": int,
            "ttft_s": float,
            "tokens_per_s": float,
            "finish_reason": str,
            "sources": str,  # JSON list of cited hits
        },
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
        defaults={"active": 1},
    )
    db.table("messages").create_index(["conversation_id", "seq"])
    db.table("messages").enable_fts(["content"], create_triggers=True, tokenize="porter")


@core(name="0002_presets")
def _presets(db: Database) -> None:
    db.table("presets").create({"name": str, "config": str, "builtin": int, "created_at": str}, pk="name")


@core(name="0003_prompt_content")
def _prompt_content(db: Database) -> None:
    # what the model was actually sent for a user message (retrieved references quoted above
    # the question); later turns resend exactly this, so llama.cpp reuses the cached KV prefix
    db.table("messages").add_column("prompt_content", str)


@core(name="0004_message_tree")
def _message_tree(db: Database) -> None:
    # branches: each message points at the one it follows; regenerate and edit add siblings.
    # ``chosen_at`` orders the last time each message was on the path shown, so switching back
    # to a branch brings back the sub-branch last seen there. Rows of older versions get
    # parents by how those versions wrote them (see store/tree_backfill.py).
    from .tree_backfill import backfill_parents

    db.table("messages").add_column("parent_id", str)
    db.table("messages").add_column("chosen_at", int)
    db.table("messages").create_index(["conversation_id", "parent_id"])
    backfill_parents(db)
