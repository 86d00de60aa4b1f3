"""Where every memory write came from, and the queue of writes waiting for the user.

Each change to core or archival memory is recorded in ``memory_writes`` in the same
transaction as the change itself, so the log never disagrees with the data. A write
the model proposed after reading retrieved text is stored with status "pending" and is
applied only when the user approves it.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlite_utils

from ..errors import MemoryError_, NotFoundError
from ..store.conversations import new_id, now_iso
from ..store.db import Database

OriginKind = Literal["user", "model", "cli", "system", "auto"]
Status = Literal["applied", "pending", "approved", "rejected", "failed", "fallback"]


@dataclass(frozen=True, kw_only=True)
class Origin:
    """Who asked for a memory write, and in which conversation and message."""

    kind: OriginKind
    conversation_id: str = ""
    message_id: str = ""
    #: free text, e.g. "tool call core_memory_append" or "approved write 3f2a…"
    note: str = ""

    def describe(self) -> str:
        text = {
            "user": "user edit",
            "model": "model tool call",
            "cli": "command line",
            "system": "Hearth",
            "auto": "automatic memory",
        }[self.kind]
        if self.conversation_id:
            text += f" in conversation {self.conversation_id}"
        if self.message_id:
            text += f", message {self.message_id}"
        return text


USER = Origin(kind="user")
CLI = Origin(kind="cli")


@dataclass(frozen=True, kw_only=True)
class WriteRecord:
    id: str
    created_at: str
    action: str
    target: str
    args: dict[str, Any]
    origin: str
    conversation_id: str
    message_id: str
    status: str
    note: str
    resolved_at: str


def record_write(
    db: sqlite_utils.Database,
    *,
    action: str,
    target: str,
    args: dict[str, Any],
    origin: Origin,
    status: Status = "applied",
    note: str = "",
) -> str:
    """Insert one provenance row; call inside the transaction that makes the change."""
    write_id = new_id()
    db.table("memory_writes").insert(
        {
            "id": write_id,
            "created_at": now_iso(),
            "action": action,
            "target": target,
            "args": json.dumps(args, ensure_ascii=False),
            "origin": origin.kind,
            "conversation_id": origin.conversation_id,
            "message_id": origin.message_id,
            "status": status,
            "note": note or origin.note,
            "resolved_at": "",
        }
    )
    return write_id


class WriteLog:
    """Read and resolve provenance rows."""

    def __init__(self, database: Database):
        self._database = database

    def record(
        self,
        *,
        action: str,
        target: str,
        args: dict[str, Any],
        origin: Origin,
        status: Status,
        note: str = "",
    ) -> str:
        with self._database.tx() as db:
            return record_write(
                db, action=action, target=target, args=args, origin=origin, status=status, note=note
            )

    def get(self, write_id: str) -> WriteRecord:
        with self._database.read() as db:
            rows = list(db["memory_writes"].rows_where("id = ?", [write_id]))
        if not rows:
            raise NotFoundError(f"No memory write with id {write_id!r}. List them with `memory log`.")
        return _record(rows[0])

    def list(
        self,
        *,
        status: str | None = None,
        conversation_id: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[WriteRecord]:
        where, params = [], []
        for column, value in (("status", status), ("conversation_id", conversation_id), ("target", target)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        with self._database.read() as db:
            rows = db["memory_writes"].rows_where(
                " and ".join(where) or None, params, order_by="created_at desc, rowid desc", limit=limit
            )
            return [_record(r) for r in rows]

    def pending(self) -> builtins.list[WriteRecord]:
        return self.list(status="pending")

    def resolve(self, db: sqlite_utils.Database, write_id: str, status: Status, note: str) -> None:
        """Mark a pending write approved or rejected (inside the caller's transaction)."""
        rows = list(db["memory_writes"].rows_where("id = ?", [write_id]))
        if not rows:
            raise NotFoundError(f"No memory write with id {write_id!r}.")
        if rows[0]["status"] != "pending":
            raise MemoryError_(
                f"Memory write {write_id} is {rows[0]['status']}, not pending; only pending writes can be "
                "approved or rejected."
            )
        db.table("memory_writes").update(write_id, {"status": status, "note": note, "resolved_at": now_iso()})


def _record(row: dict[str, Any]) -> WriteRecord:
    return WriteRecord(
        id=row["id"],
        created_at=row["created_at"],
        action=row["action"],
        target=row["target"],
        args=json.loads(row["args"] or "{}"),
        origin=row["origin"],
        conversation_id=row["conversation_id"] or "",
        message_id=row["message_id"] or "",
        status=row["status"],
        note=row["note"] or "",
        resolved_at=row["resolved_at"] or "",
    )
