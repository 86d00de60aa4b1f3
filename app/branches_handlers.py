"""Plain functions behind branch arrows, forks and conversation files. Tests call them directly."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, EngineError, NotFoundError
from engine.store import BranchPoint

from .handlers import ChatHistory, conversation_history, friendly
from .markup import escape_inline

if TYPE_CHECKING:
    from engine.factory import Services

#: message ids are uuid4 hex; anything else from the page is refused before a lookup
_ID = re.compile(r"^[0-9a-f]{32}$")


def branch_data(services: Services, conversation_id: str | None) -> str:
    """The path shown, as JSON for the page's arrows: one entry per user/assistant message,
    in order, with its place among its siblings. Only ids and numbers: nothing to render."""
    if not conversation_id:
        return "[]"
    points = [p for p in services.branches.branch_points(conversation_id) if p.role in ("user", "assistant")]
    # the Chatbot draws consecutive messages of one role (a question whose answer failed) as
    # one row: such a run gets the arrows of its last message, so rows and entries still match
    rows = [p for i, p in enumerate(points) if i + 1 == len(points) or points[i + 1].role != p.role]
    return json.dumps([_point(p) for p in rows])


def _point(p: BranchPoint) -> dict[str, Any]:
    return {
        "id": p.message_id,
        "role": p.role,
        "pos": p.position,
        "total": p.total,
        "prev": p.previous_id,
        "next": p.next_id,
    }


def _own_message(services: Services, conversation_id: str | None, message_id: str) -> str:
    if not conversation_id or not _ID.match(message_id or ""):
        raise NotFoundError("That message is not in this conversation.")
    if services.conversations.message(message_id).conversation_id != conversation_id:
        raise NotFoundError("That message is not in this conversation.")
    return message_id


def switch_branch(
    services: Services, conversation_id: str | None, message_id: str
) -> tuple[ChatHistory, str]:
    """Show the branch through ``message_id``; the next turn's prompt follows it (saved)."""
    try:
        services.branches.switch(_own_message(services, conversation_id, message_id))
    except EngineError as e:
        shown = conversation_history(services, conversation_id)
        return [*shown, {"role": "assistant", "content": friendly(e)}], branch_data(services, conversation_id)
    return conversation_history(services, conversation_id), branch_data(services, conversation_id)


def fork_from(
    services: Services, conversation_id: str | None, message_id: str
) -> tuple[ChatHistory, str | None, str, str]:
    """A new conversation holding the path up to ``message_id``; it is opened."""
    try:
        forked = services.branches.fork(_own_message(services, conversation_id, message_id))
    except EngineError as e:
        shown = conversation_history(services, conversation_id)
        system = services.conversations.get(conversation_id).system_prompt if conversation_id else ""
        return [*shown, {"role": "assistant", "content": friendly(e)}], conversation_id, system, "[]"
    history = conversation_history(services, forked.id)
    return history, forked.id, forked.system_prompt, branch_data(services, forked.id)


def export_file(services: Services, conversation_id: str | None, markdown: bool) -> tuple[str | None, str]:
    """Write the conversation to a file for download: (path, note)."""
    if not conversation_id:
        return None, "Open a conversation first."
    try:
        conversation = services.conversations.get(conversation_id)
        if markdown:
            text, suffix = services.branches.export_markdown(conversation_id), "md"
        else:
            text, suffix = json.dumps(services.branches.export_json(conversation_id), indent=1), "json"
    except EngineError as e:
        return None, friendly(e)
    # the server's temp folder (data_dir/tmp) is where the page serves files from
    folder = Path(services.settings.data_dir) / "tmp" / "exports" / secrets.token_hex(8)
    folder.mkdir(parents=True, exist_ok=True)
    name = (
        re.sub(r"[^A-Za-z0-9._-]+", "-", conversation.title or "conversation").strip("-")[:60]
        or "conversation"
    )
    path = folder / f"{name}.{suffix}"
    path.write_text(text, encoding="utf-8")
    return str(path), f"Exported {escape_inline(conversation.title)} as {suffix.upper()}."


def import_file(services: Services, path: str | None) -> tuple[ChatHistory, str | None, str, str, str]:
    """Import an exported JSON file as a new conversation and open it.

    Returns (history, conversation id, system prompt, branch data, note). A refused file
    changes nothing and the note says why.
    """
    if not path:
        return [], None, services.settings.system_prompt, "[]", "Choose a .json file exported by Hearth."
    try:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ConfigError(f"Could not read the uploaded file: {e.strerror}.", field="file") from e
        conversation = services.branches.import_json(data)
    except EngineError as e:
        return [], None, services.settings.system_prompt, "[]", friendly(e)
    return (
        conversation_history(services, conversation.id),
        conversation.id,
        conversation.system_prompt,
        branch_data(services, conversation.id),
        f"Imported {escape_inline(conversation.title)}.",
    )
