"""The studio's tables: each answer's provenance and token trace, and cached model-file hashes.

Their own migration set, keyed by message id: the messages table stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database as SqliteDatabase
from sqlite_utils.migrations import Migrations

from ..store import Database
from .trace import TokenTrace

studio_migrations = Migrations("hearth.studio")


@studio_migrations(name="0001_provenance_traces_hashes")
def _tables(db: SqliteDatabase) -> None:
    db.table("answer_provenance").create(
        {
            "message_id": str,
            "model_path": str,
            "model_size": int,
            "model_mtime_ns": int,
            "model_sha256": str,  # None while the file was still being hashed: see file_hashes
            "template_sha256": str,
            "seed": int,
            "hearth_version": str,
            "backend": str,
        },
        pk="message_id",
    )
    db.table("answer_traces").create(
        {"message_id": str, "n_tokens": int, "top_n": int, "data": bytes}, pk="message_id"
    )
    # size + mtime identify a file's version: a multi-GB model is hashed once, not per turn
    db.table("file_hashes").create({"path": str, "size": int, "mtime_ns": int, "sha256": str}, pk="path")


@dataclass(frozen=True, kw_only=True)
class Provenance:
    message_id: str
    model_path: str
    model_size: int
    model_mtime_ns: int
    model_sha256: str | None
    template_sha256: str
    seed: int
    hearth_version: str
    backend: str


class StudioStore:
    def __init__(self, database: Database):
        self._database = database

    def save(self, provenance: Provenance, trace: TokenTrace | None) -> None:
        row: dict[str, Any] = dict(provenance.__dict__)
        with self._database.tx() as db:
            db.table("answer_provenance").upsert(row, pk="message_id")
            if trace is not None and len(trace):
                blob = {"message_id": provenance.message_id, "n_tokens": len(trace), "top_n": trace.top_n}
                db.table("answer_traces").upsert({**blob, "data": trace.to_bytes()}, pk="message_id")

    def provenance(self, message_id: str) -> Provenance | None:
        with self._database.read() as db:
            rows = list(db["answer_provenance"].rows_where("message_id = ?", [message_id]))
        if not rows:
            return None
        found = Provenance(**rows[0])
        if found.model_sha256 is None:  # hashed after the answer was saved
            sha = self.file_hash(found.model_path, found.model_size, found.model_mtime_ns)
            found = Provenance(**{**rows[0], "model_sha256": sha})
        return found

    def trace(self, message_id: str) -> TokenTrace | None:
        with self._database.read() as db:
            rows = list(db["answer_traces"].rows_where("message_id = ?", [message_id]))
        if not rows:
            return None
        row = rows[0]
        return TokenTrace.from_bytes(row["data"], n_tokens=row["n_tokens"], top_n=row["top_n"])

    def trace_bytes(self, message_id: str) -> int:
        with self._database.read() as db:
            got = db.execute(
                "select length(data) from answer_traces where message_id = ?", [message_id]
            ).fetchone()
        return int(got[0]) if got else 0

    def file_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        with self._database.read() as db:
            rows = list(db["file_hashes"].rows_where("path = ?", [path]))
        if rows and rows[0]["size"] == size and rows[0]["mtime_ns"] == mtime_ns:
            return str(rows[0]["sha256"])
        return None

    def remember_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self._database.tx() as db:
            db.table("file_hashes").upsert(
                {"path": path, "size": size, "mtime_ns": mtime_ns, "sha256": sha256}, pk="path"
            )
