"""A conversation with all its branches as a versioned JSON file; its path shown as Markdown.

The JSON names messages by number (``n``, in the order they were written) and each by the
number it follows (``parent``), so a file does not depend on the database it came from and
export -> import -> export gives the same file. Importing is all or nothing: the file is
checked first and written in one transaction. Imported text stays untrusted like any model
output: the page renders it through app/markup.py and the backend breaks control-token
spellings in every message it sends.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError, NotFoundError
from .conversations import StoredConversation, new_id
from .db import Database
from .placement import set_path

FORMAT = "hearth.conversation"
VERSION = 1
#: a file larger than this is refused before it is parsed
MAX_FILE_BYTES = 64 * 2**20
#: columns stored as JSON text, exported as JSON values
JSON_COLUMNS = ("config", "sources")
#: columns the file spells differently (n/parent) or that belong to the database
LOCAL_COLUMNS = ("id", "conversation_id", "parent_id", "seq")
CONVERSATION_FIELDS = ("title", "system_prompt", "collections", "created_at", "updated_at")
ROLES = ("user", "assistant", "system", "tool")


def export_conversation(database: Database, conversation_id: str) -> dict[str, Any]:
    """Every message of the conversation, hidden branches included, as a JSON-ready dict."""
    with database.read() as db:
        found = list(db.table("conversations").rows_where("id = ?", [conversation_id]))
        if not found:
            raise NotFoundError(f"Conversation {conversation_id!r} does not exist.")
        rows = list(db.table("messages").rows_where("conversation_id = ?", [conversation_id], order_by="seq"))
    numbers = {row["id"]: n for n, row in enumerate(rows, 1)}
    conversation = {key: found[0][key] for key in CONVERSATION_FIELDS}
    conversation["collections"] = json.loads(conversation["collections"] or "[]")
    messages = []
    for n, row in enumerate(rows, 1):
        out: dict[str, Any] = {"n": n, "parent": numbers.get(row["parent_id"])}
        for key, value in row.items():
            if key in LOCAL_COLUMNS:
                continue
            out[key] = json.loads(value) if key in JSON_COLUMNS and value else value
        messages.append(out)
    return {"format": FORMAT, "version": VERSION, "conversation": conversation, "messages": messages}


def export_markdown(database: Database, conversation_id: str) -> str:
    """The path shown, as Markdown (a document for people; the JSON is the one to import)."""
    data = export_conversation(database, conversation_id)
    conversation = data["conversation"]
    lines = [f"# {conversation['title'] or 'Untitled'}", ""]
    if conversation["system_prompt"]:
        lines += [f"> System: {conversation['system_prompt']}", ""]
    names = {"user": "You", "assistant": "Assistant"}
    for m in data["messages"]:
        if m.get("active"):
            lines += [f"## {names.get(m['role'], m['role'])}", "", m["content"] or "", ""]
    return "\n".join(lines)


def import_conversation(database: Database, source: bytes | str) -> StoredConversation:
    """A new conversation from an exported file; nothing changes if the file is refused."""
    data = parse_file(source)
    columns = _message_columns(database)
    conversation, messages = check_file(data, columns)
    conversation_id = new_id()
    ids = {m["n"]: new_id() for m in messages}
    rows = [_row(m, seq, ids, conversation_id) for seq, m in enumerate(messages, 1)]
    with database.tx() as db:
        db.table("conversations").insert({**conversation, "id": conversation_id})
        db.table("messages").insert_all(rows, batch_size=500)
        shown = [row["id"] for row in rows if row.get("active")]
        if shown:  # the flags read from the file, made one consistent path
            set_path(db, conversation_id, shown[-1], remember=False)
    return _stored(conversation_id, conversation)


def _row(m: dict[str, Any], seq: int, ids: dict[int, str], conversation_id: str) -> dict[str, Any]:
    row = {k: v for k, v in m.items() if k not in ("n", "parent")}
    for key in JSON_COLUMNS:
        if row.get(key) is not None:
            row[key] = json.dumps(row[key])
    row.update(id=ids[m["n"]], conversation_id=conversation_id, seq=seq)
    row["parent_id"] = ids[m["parent"]] if m["parent"] is not None else None
    return row


def parse_file(source: bytes | str) -> dict[str, Any]:
    size = len(source.encode() if isinstance(source, str) else source)
    if size > MAX_FILE_BYTES:
        raise _bad(f"it is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    try:
        data = json.loads(source)
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(f"it is not valid JSON ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(f'it is not a Hearth conversation export (no "format": "{FORMAT}")')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad('its "version" is not a positive whole number')
    if version > VERSION:
        raise _bad(
            f"it was written by a newer Hearth (format version {version}; this one reads up to "
            f"{VERSION}). Update Hearth to import it."
        )
    return data


def check_file(data: dict[str, Any], columns: set[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The conversation row and the messages, checked; a clear ConfigError otherwise."""
    conversation = data.get("conversation")
    messages = data.get("messages")
    if not isinstance(conversation, dict) or not isinstance(messages, list):
        raise _bad('it needs a "conversation" object and a "messages" list')
    row: dict[str, Any] = {}
    for key in CONVERSATION_FIELDS:
        value = conversation.get(key, [] if key == "collections" else "")
        if key == "collections":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _bad('"conversation.collections" must be a list of names')
            value = json.dumps(value)
        elif not isinstance(value, str):
            raise _bad(f'"conversation.{key}" must be text')
        row[key] = value
    seen: set[int] = set()
    for i, m in enumerate(messages, 1):
        _check_message(m, i, seen, columns)
    return row, messages


def _check_message(m: Any, i: int, seen: set[int], columns: set[str]) -> None:
    where = f"message {i}"
    if not isinstance(m, dict):
        raise _bad(f"{where} is not an object")
    if m.get("n") != i:
        raise _bad(f'{where} must have "n": {i} (messages are numbered in order)')
    parent = m.get("parent")
    if parent is not None and parent not in seen:
        raise _bad(f'{where} follows "parent": {parent!r}, which is not an earlier message')
    if m.get("role") not in ROLES:
        raise _bad(f"{where} has role {m.get('role')!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(m.get("content"), str):
        raise _bad(f'{where} has no text "content"')
    if not isinstance(m.get("config") or {}, dict) or not isinstance(m.get("sources") or [], list):
        raise _bad(f'{where}: "config" must be an object and "sources" a list')
    for key, value in m.items():
        if key in ("n", "parent") or key in JSON_COLUMNS:
            continue
        if key not in columns or key in LOCAL_COLUMNS:
            raise _bad(f'{where} has a field this Hearth does not know: "{key}"')
        if value is not None and not isinstance(value, str | int | float):
            raise _bad(f'{where}: "{key}" must be text or a number')
    seen.add(i)


def _message_columns(database: Database) -> set[str]:
    with database.read() as db:
        return set(db.table("messages").columns_dict)


def _stored(conversation_id: str, row: dict[str, Any]) -> StoredConversation:
    return StoredConversation(
        id=conversation_id,
        title=row["title"],
        system_prompt=row["system_prompt"],
        collections=json.loads(row["collections"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _bad(reason: str) -> ConfigError:
    return ConfigError(
        f"This conversation file cannot be imported: {reason}. Nothing was changed.", field="file"
    )
