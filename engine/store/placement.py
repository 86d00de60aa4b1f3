"""Where a new message goes in its conversation's tree (see store/tree.py)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database as SqliteDatabase


def tree_place(db: SqliteDatabase, conversation_id: str, parent_id: str | None) -> dict[str, Any]:
    """Columns for a new message: it follows ``parent_id`` or, by default, the path's last message."""
    if parent_id is None:
        row = db.execute(
            "select id from messages where conversation_id = ? and active = 1 order by seq desc limit 1",
            [conversation_id],
        ).fetchone()
        parent_id = row[0] if row else None
    return {"parent_id": parent_id, "chosen_at": next_choice(db, conversation_id)}


def next_choice(db: SqliteDatabase, conversation_id: str) -> int:
    row = db.execute(
        "select coalesce(max(chosen_at), 0) + 1 from messages where conversation_id = ?",
        [conversation_id],
    ).fetchone()
    return int(row[0])
