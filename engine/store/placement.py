"""Where a new message goes in its conversation's tree, and which path is shown (see store/tree.py)."""

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


def set_path(db: SqliteDatabase, conversation_id: str, message_id: str, *, remember: bool) -> None:
    """Mark the path through ``message_id`` active (inside the caller's transaction)."""
    rows = list(
        db.execute(
            "select id, parent_id, seq, chosen_at from messages where conversation_id = ?",
            [conversation_id],
        ).fetchall()
    )
    parents = {r[0]: r[1] for r in rows}
    children: dict[str | None, list[tuple[int, int, str]]] = {}
    for mid, parent, seq, chosen in rows:
        children.setdefault(parent, []).append((chosen or 0, seq, mid))
    path: list[str] = []
    current: str | None = message_id
    while current is not None and current not in path[-1:] and len(path) <= len(parents):
        path.append(current)
        current = parents.get(current)
    leaf = message_id
    while children.get(leaf):
        leaf = max(children[leaf])[2]  # the branch below that was shown last
        path.append(leaf)
    marks = ",".join("?" * len(path))
    # only rows whose flag changes are written: each write re-indexes the row's full text
    db.execute(
        f"update messages set active = 0 where conversation_id = ? and active = 1 and id not in ({marks})",
        [conversation_id, *path],
    )
    db.execute(f"update messages set active = 1 where active = 0 and id in ({marks})", path)
    # the order matters among siblings only: a message without any keeps its number
    branched = [mid for mid in path if len(children.get(parents.get(mid), ())) > 1]
    if remember and branched:
        choice = next_choice(db, conversation_id)
        spots = ",".join("?" * len(branched))
        db.execute(f"update messages set chosen_at = ? where id in ({spots})", [choice, *branched])
