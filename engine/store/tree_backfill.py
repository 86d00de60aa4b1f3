"""Parents for messages written before conversations were trees (migration 0004).

Older versions kept one flat list per conversation: a regenerate hid the answers after the
last user message and added a new one; an edit hid that user message too and added its
replacement. The active messages, in order, are the path shown; a hidden answer follows the
user message before it; a hidden user message was replaced by a later one, so it shares the
parent of the next active user message (or of the next user message at all).
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database


def backfill_parents(db: Database) -> None:
    ids = [r[0] for r in db.execute("select distinct conversation_id from messages").fetchall()]
    for conversation_id in ids:
        rows = list(db.table("messages").rows_where("conversation_id = ?", [conversation_id], order_by="seq"))
        for message_id, parent in parents_of(rows).items():
            db.table("messages").update(message_id, {"parent_id": parent})
        for row in rows:
            db.table("messages").update(row["id"], {"chosen_at": row["seq"]})


def parents_of(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """Message id -> parent id, for one conversation's rows in ``seq`` order."""
    parents: dict[str, str | None] = {}
    tip: str | None = None
    for row in rows:
        if row["active"]:
            parents[row["id"]], tip = tip, row["id"]
    # latest first: a hidden user message takes its parent from a later one
    for i, row in reversed(list(enumerate(rows))):
        if row["active"]:
            continue
        if row["role"] == "user":
            later = [r for r in rows[i + 1 :] if r["role"] == "user"]
            replacement = next((r for r in later if r["active"]), later[0] if later else None)
            parents[row["id"]] = parents.get(replacement["id"]) if replacement else _before(rows, i)
        else:
            asked = next((r for r in reversed(rows[:i]) if r["role"] == "user"), None)
            parents[row["id"]] = asked["id"] if asked else _before(rows, i)
    return parents


def _before(rows: list[dict[str, Any]], i: int) -> str | None:
    return rows[i - 1]["id"] if i else None
