"""The ``hearth.memory`` migration set: core blocks, archival rows, summaries, provenance.

Never edit a migration that has shipped; add a new one. Recall memory needs no table of
its own: it searches the ``messages`` table and its FTS index (``hearth.core``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

memory_migrations = Migrations("hearth.memory")

#: blocks every installation starts with; users add more (and may empty these, not delete them)
DEFAULT_BLOCKS = (
    (
        "persona",
        "Who the assistant is and how it should behave.",
        "I am Hearth, a private assistant on this computer. I remember what the user tells me.",
    ),
    ("human", "What the assistant knows about the user.", ""),
)

DEFAULT_BLOCK_LIMIT = 2000


@memory_migrations(name="0001_memory_tables")
def _memory_tables(db: Database) -> None:
    _blocks_table(db)
    _archival_table(db)
    _summaries_table(db)
    _writes_table(db)


# The tables of 0001, one function each (the migration above runs them in this order).


def _blocks_table(db: Database) -> None:
    db.table("memory_blocks").create(
        {
            "id": str,  # label for global blocks, "<conversation_id>:<label>" for per-conversation ones
            "label": str,
            "conversation_id": str,  # "" = global (shown in every conversation)
            "value": str,
            "char_limit": int,
            "description": str,
            "created_at": str,
            "updated_at": str,
            "updated_by": str,  # provenance of the last change, e.g. "model in conversation X"
        },
        pk="id",
    )
    db.table("memory_blocks").create_index(["conversation_id", "label"], unique=True)


def _archival_table(db: Database) -> None:
    db.table("memory_archival").create(
        {
            "id": str,
            "text": str,
            "created_at": str,
            "origin": str,  # user | model | cli | system
            "conversation_id": str,
            "message_id": str,
            "write_id": str,  # the memory_writes row that created it
            "indexed": int,  # 1 once its vector is in Chroma; 0 rows are re-embedded on rebuild
        },
        pk="id",
    )
    db.table("memory_archival").enable_fts(["text"], create_triggers=True, tokenize="porter")


def _summaries_table(db: Database) -> None:
    db.table("memory_summaries").create(
        {
            "conversation_id": str,
            "text": str,
            "through_seq": int,  # messages with seq <= this are folded in and leave the window
            "folded": int,  # how many messages the summary covers
            "updated_at": str,
        },
        pk="conversation_id",
    )


def _writes_table(db: Database) -> None:
    db.table("memory_writes").create(
        {
            "id": str,
            "created_at": str,
            "action": str,  # block_set | block_append | block_replace | block_create | block_delete |
            # archival_insert | archival_delete | summary
            "target": str,  # "block:human", "block:<conv>:todo", "archival:<id>", "summary:<conv>"
            "args": str,  # JSON arguments, enough to apply a pending write later
            "origin": str,  # user | model | cli | system
            "conversation_id": str,
            "message_id": str,
            "status": str,  # applied | pending | approved | rejected | failed | fallback
            "note": str,  # why it is pending, what failed, what was approved
            "resolved_at": str,
        },
        pk="id",
    )
    db.table("memory_writes").create_index(["status"])
    db.table("memory_writes").create_index(["conversation_id"])


@memory_migrations(name="0002_default_blocks")
def _default_blocks(db: Database) -> None:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    for label, description, value in DEFAULT_BLOCKS:
        db.table("memory_blocks").insert(
            {
                "id": label,
                "label": label,
                "conversation_id": "",
                "value": value,
                "char_limit": DEFAULT_BLOCK_LIMIT,
                "description": description,
                "created_at": now,
                "updated_at": now,
                "updated_by": "default",
            },
            ignore=True,
        )


@memory_migrations(name="0003_automatic_memory")
def _automatic_memory(db: Database) -> None:
    # archival rows written by the automatic step (1) may be updated and deleted with their sources
    db.table("memory_archival").add_column("auto", int, not_null_default=0)
    db.table("memory_archival").add_column("updated_at", str, not_null_default="")
    db.table("memory_archival_sources").create(
        {
            "id": str,
            "archival_id": str,
            "conversation_id": str,
            "message_id": str,
            "text": str,  # the memory's text as this message put it (restored if a later source goes)
            "created_at": str,
        },
        pk="id",
    )
    db.table("memory_archival_sources").create_index(["archival_id"])
    db.table("memory_archival_sources").create_index(["conversation_id"])
    # which messages have a vector in the messages collection (Chroma is rebuilt from this and `messages`)
    db.table("memory_message_vectors").create(
        {"message_id": str, "conversation_id": str, "indexed_at": str}, pk="message_id"
    )
    db.table("memory_message_vectors").create_index(["conversation_id"])
    # switches the user flips in the Memory tab (kept across restarts)
    db.table("memory_settings").create({"key": str, "value": str}, pk="key")


@memory_migrations(name="0004_summary_branch")
def _summary_branch(db: Database) -> None:
    # the last message a summary folded in: a summary serves only the branches that pass through
    # it ("" in summaries written before branches were checked, which keep serving every branch)
    db.table("memory_summaries").add_column("through_id", str, not_null_default="")
