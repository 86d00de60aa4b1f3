"""Recall memory: every message of every conversation, by keywords (FTS5) and by date.

Nothing is copied: the ``messages`` table (with its FTS index from ``hearth.core``) is
the recall tier. Messages that left the context window stay here and are found again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..errors import MemoryError_
from ..store.db import Database
from ..types import Hit

#: words too common to say what a question is about (kept out of keyword queries)
STOPWORDS = frozenset(
    "a about after again all also am an and any are as at be been before being but by can could did do "
    "does doing for from had has have having he her here hers him his how i if in into is it its just "
    "me more most my no nor not now of off on once only or other our out over own same she should so "
    "some such than that the their them then there these they this those through to too under until up "
    "very was we were what when where which while who whom why will with would you your yours "
    "tell remember know said say told please earlier before again".split()
)


@dataclass(frozen=True, kw_only=True)
class RecallResult:
    message_id: str
    conversation_id: str
    conversation_title: str
    seq: int
    role: str
    content: str
    created_at: str
    active: bool
    #: bm25 score, higher = better match (0 for date-only listings)
    score: float

    def to_hit(self, max_chars: int = 400) -> Hit:
        text = self.content if len(self.content) <= max_chars else self.content[: max_chars - 1] + "…"
        return Hit(
            kind="recall",
            id=self.message_id,
            text=text,
            score=self.score,
            source=f"{self.role} in '{self.conversation_title}', {self.created_at[:10]}",
            meta={
                "conversation_id": self.conversation_id,
                "seq": self.seq,
                "role": self.role,
                "created_at": self.created_at,
            },
        )


def keywords(text: str) -> list[str]:
    """Search words from free text: punctuation stripped, common words left out."""
    words = ["".join(ch for ch in w if ch.isalnum() or ch in "_-").strip("-_") for w in text.lower().split()]
    words = [w for w in words if w]
    meaningful = [w for w in words if w not in STOPWORDS and len(w) > 1]
    return list(dict.fromkeys(meaningful))


def parse_day(value: str | date | None, *, end: bool = False) -> str | None:
    """ISO bound for ``created_at`` comparisons; an end date includes that whole day."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        day = value
    elif isinstance(value, date):
        day = datetime(value.year, value.month, value.day)
    else:
        try:
            day = datetime.fromisoformat(str(value).strip())
        except ValueError as e:
            raise MemoryError_(f"Dates look like 2025-01-31 (or 2025-01-31T14:00); got {value!r}.") from e
    only_date = not isinstance(value, datetime) and len(str(value).strip()) <= 10
    if end and only_date:
        day = day + timedelta(days=1)
    if day.tzinfo is not None:  # stored times are UTC; compare like with like
        day = day.astimezone(UTC).replace(tzinfo=None)
    return day.isoformat()


class RecallMemory:
    def __init__(self, database: Database):
        self._database = database

    def search(
        self,
        query: str,
        *,
        start: str | date | None = None,
        end: str | date | None = None,
        conversation_id: str | None = None,
        limit: int = 10,
        offset: int = 0,
        include_inactive: bool = True,
        exclude_after: tuple[str, int] | None = None,
    ) -> list[RecallResult]:
        """Messages matching any keyword of ``query`` (best first), within optional dates.

        An empty query (or only common words) lists messages in the date range, newest
        first. ``exclude_after=(conversation_id, seq)`` leaves out that conversation's
        messages after ``seq`` (those still in the context window).
        """
        words = keywords(query)
        where, params = self._filters(start, end, conversation_id, include_inactive, exclude_after)
        if words:
            sql = (
                "select m.*, c.title as conversation_title, -f.rank as score from messages m"
                " join messages_fts f on f.rowid = m.rowid join conversations c on c.id = m.conversation_id"
                " where messages_fts match ?"
                + "".join(f" and {w}" for w in where)
                + " order by f.rank limit ? offset ?"
            )
            params = [" OR ".join(f'"{w}"' for w in words), *params]
        else:
            if not where and query.strip():
                return []  # only common words and no dates: nothing specific to look for
            sql = (
                "select m.*, c.title as conversation_title, 0.0 as score from messages m"
                " join conversations c on c.id = m.conversation_id"
                + (" where " + " and ".join(where) if where else "")
                + " order by m.created_at desc limit ? offset ?"
            )
        params += [max(1, limit), max(0, offset)]
        with self._database.read() as db:
            cur = db.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [_result(dict(zip(cols, row))) for row in cur.fetchall()]

    def by_date(
        self,
        start: str | date | None,
        end: str | date | None = None,
        *,
        conversation_id: str | None = None,
        limit: int = 50,
    ) -> list[RecallResult]:
        if start in (None, "") and end in (None, ""):
            raise MemoryError_("Give a start date, an end date, or both (like 2025-01-31).")
        return self.search("", start=start, end=end, conversation_id=conversation_id, limit=limit)

    def by_ids(self, ids: list[str]) -> dict[str, RecallResult]:
        """Messages by id (those that no longer exist are left out)."""
        if not ids:
            return {}
        sql = (
            "select m.*, c.title as conversation_title, 0.0 as score from messages m"
            f" join conversations c on c.id = m.conversation_id where m.id in ({','.join('?' * len(ids))})"
        )
        with self._database.read() as db:
            cur = db.execute(sql, list(ids))
            cols = [c[0] for c in cur.description]
            return {r.message_id: r for r in (_result(dict(zip(cols, row))) for row in cur.fetchall())}

    def count(self) -> int:
        with self._database.read() as db:
            return db["messages"].count

    @staticmethod
    def _filters(start, end, conversation_id, include_inactive, exclude_after) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        lo, hi = parse_day(start), parse_day(end, end=True)
        if lo and hi and lo >= hi:
            raise MemoryError_(f"The start date {start} is after the end date {end}.")
        if lo:
            where.append("m.created_at >= ?")
            params.append(lo)
        if hi:
            where.append("m.created_at < ?")
            params.append(hi)
        if conversation_id:
            where.append("m.conversation_id = ?")
            params.append(conversation_id)
        if not include_inactive:
            where.append("m.active = 1")
        if exclude_after:
            where.append("not (m.conversation_id = ? and m.seq > ?)")
            params.extend(exclude_after)
        return where, params


def _result(row: dict[str, Any]) -> RecallResult:
    return RecallResult(
        message_id=row["id"],
        conversation_id=row["conversation_id"],
        conversation_title=row.get("conversation_title") or "",
        seq=row["seq"],
        role=row["role"],
        content=row["content"] or "",
        created_at=row["created_at"],
        active=bool(row["active"]),
        score=float(row.get("score") or 0.0),
    )
