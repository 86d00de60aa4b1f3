"""Plain functions behind the Memory tab. Tests call them without a browser.

Each takes ``services`` first. Errors come back as friendly markdown (never a traceback),
and a refused edit (over a block's limit) changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import EngineError, NotFoundError
from engine.memory.provenance import USER

from .handlers import friendly
from .markup import escape_inline, escape_text

if TYPE_CHECKING:
    from engine.factory import Services

GLOBAL = ""
ARCHIVAL_HEADERS = ["id", "text", "saved", "from"]
PENDING_HEADERS = ["id", "action", "what", "origin", "why"]
LOG_HEADERS = ["when", "status", "action", "target", "by", "conversation", "message", "note"]


def _memory(services: Services):
    return services.memory


# core blocks


def scope_choices(services: Services) -> list[tuple[str, str]]:
    """'Global' plus each conversation (blocks may be scoped to one)."""
    return [("Global (every conversation)", GLOBAL)] + conversation_choices(services)


def conversation_choices(services: Services) -> list[tuple[str, str]]:
    return [(f"{c.title or 'Untitled'} · {c.updated_at[:10]}", c.id) for c in services.conversations.list()]


def block_choices(services: Services, scope: str | None = GLOBAL) -> list[str]:
    return [b.label for b in _memory(services).core.blocks(scope or None)]


def fill_label(text: str | None, limit: int) -> str:
    """The live counter under the editor; says clearly when the text is too long."""
    n = len(text or "")
    if n > limit:
        return f"**{n}/{limit} chars**: {n - limit} over the limit; it will not be saved until it fits."
    return f"{n}/{limit} chars"


def block_view(services: Services, label: str | None, scope: str | None = GLOBAL) -> tuple[str, str, int]:
    """(text, description line, limit) of the block a scope sees under ``label``."""
    if not label:
        return "", "Choose a block.", 0
    try:
        block = _memory(services).core.get(label, scope or None)
    except EngineError as e:
        return "", friendly(e), 0
    where = "this conversation only" if block.conversation_id else "every conversation"
    info = f"{fill_label(block.value, block.limit)} · {where} · last changed by {escape_inline(block.updated_by or 'nobody')}"
    if block.updated_at:
        info += f" at {block.updated_at[:19].replace('T', ' ')}"
    return block.value, info, block.limit


def save_block(services: Services, label: str | None, text: str, scope: str | None = GLOBAL) -> str:
    if not label:
        return "⚠️ Choose a block first."
    try:
        block = _memory(services).core.set(
            label, text or "", conversation_id=scope or None, origin=_user(scope)
        )
    except EngineError as e:
        return friendly(e)
    return f"✅ Saved **{escape_inline(block.label)}** ({block.fill})."


def create_block(
    services: Services, label: str, limit: float | int | None, scope: str | None = GLOBAL
) -> str:
    try:
        limit_int = int(limit) if limit not in (None, "") else 2000
        block = _memory(services).core.create(
            label, limit=limit_int, conversation_id=scope or "", origin=_user(scope)
        )
    except (EngineError, ValueError) as e:
        return (
            friendly(e)
            if isinstance(e, EngineError)
            else f"⚠️ The limit must be a whole number; got {limit!r}."
        )
    return f"✅ Created **{escape_inline(block.label)}** ({block.fill}, {'this conversation' if scope else 'global'})."


def delete_block(services: Services, label: str | None, scope: str | None = GLOBAL) -> str:
    if not label:
        return "⚠️ Choose a block first."
    try:
        _memory(services).core.delete(label, conversation_id=scope or None, origin=_user(scope))
    except EngineError as e:
        return friendly(e)
    return f"🗑️ Deleted **{escape_inline(label)}**."


def _user(scope: str | None):
    from engine.memory.provenance import Origin

    return Origin(kind="user", conversation_id=scope or "", note="Memory panel") if scope else USER


# search


def search(services: Services, query: str, start: str = "", end: str = "", limit: int = 10) -> str:
    if not (query or "").strip() and not (start or end):
        return "Type something to search for, or give dates."
    try:
        hits = _memory(services).search(query or "", k=int(limit), start=start or None, end=end or None)
    except EngineError as e:
        return friendly(e)
    if not hits:
        return "Nothing found."
    return "\n\n".join(_hit_line(n, h.__dict__) for n, h in enumerate(hits, 1))


def _hit_line(number: int, hit: dict[str, Any]) -> str:
    kind = {"memory": "archival", "recall": "message"}.get(hit.get("kind", ""), hit.get("kind", ""))
    text = " ".join(str(hit.get("text", "")).split())
    source = escape_inline(hit.get("source", ""))
    return f"**{number}. {escape_inline(kind)}** · {source} · score {float(hit.get('score') or 0):.2f}\n\n> {escape_text(text)}"


# archival


def archival_table(services: Services, limit: int = 200) -> list[list[str]]:
    memory = _memory(services)
    return [
        [e.id, e.text, (e.updated_at or e.created_at)[:19].replace("T", " "), _from(memory, e)]
        for e in memory.archival.list(limit=limit)
    ]


def _from(memory, entry) -> str:
    if not entry.auto:
        return "automatic, edited by you" if entry.origin == "auto" else entry.origin
    chats = {s["conversation_id"] for s in memory.archival.sources(entry.id)}
    return f"automatic · said in {len(chats)} chat{'s' if len(chats) != 1 else ''}"


def edit_archival(services: Services, entry_id: str, text: str) -> str:
    entry_id = (entry_id or "").strip()
    if not entry_id:
        return "⚠️ Paste the id of the memory to edit (first column of the table)."
    try:
        entry = _memory(services).archival.update(entry_id, text or "", origin=USER)
    except EngineError as e:
        return friendly(e)
    return f"✅ Updated `{entry.id}`; it is yours now and stays if its chats are deleted."


def auto_memory_on(services: Services) -> bool:
    return _memory(services).auto_enabled


def set_auto_memory(services: Services, enabled: bool) -> str:
    try:
        on = _memory(services).set_auto(bool(enabled))
    except EngineError as e:
        return friendly(e)
    if on:
        return "✅ Hearth keeps what you say about yourself as memories (listed under Archival memory)."
    return "⏸️ Automatic memories are off: nothing new is kept unless you add it."


def add_archival(services: Services, text: str) -> str:
    try:
        entry = _memory(services).archival.insert(text or "", origin=USER)
    except EngineError as e:
        return friendly(e)
    note = "" if entry.indexed else " (saved; it will be searchable by meaning once the index is reachable)"
    return f"✅ Kept in archival memory as {escape_inline(entry.id)}{note}."


def delete_archival(services: Services, entry_id: str) -> str:
    entry_id = (entry_id or "").strip()
    if not entry_id:
        return "⚠️ Paste the id of the memory to delete (first column of the table)."
    try:
        _memory(services).archival.delete(entry_id, origin=USER)
    except EngineError as e:
        return friendly(e)
    return f"🗑️ Deleted {escape_inline(entry_id)}."


# suggestions waiting for approval, and the provenance log


def pending_table(services: Services) -> list[list[str]]:
    return [
        [w.id, w.action, _what(w.args), _origin(w.origin, w.conversation_id, w.message_id), w.note]
        for w in _memory(services).log.pending()
    ]


def resolve_pending(services: Services, write_id: str, approve: bool) -> str:
    write_id = (write_id or "").strip()
    if not write_id:
        return "⚠️ Paste the id of a suggestion (first column)."
    try:
        if approve:
            return f"✅ {escape_text(_memory(services).approve(write_id))}"
        _memory(services).reject(write_id)
    except EngineError as e:
        return friendly(e)
    return f"🗑️ Rejected {escape_inline(write_id)}; nothing was written."


def log_table(services: Services, limit: int = 100) -> list[list[str]]:
    return [
        [
            w.created_at[:19].replace("T", " "),
            w.status,
            w.action,
            w.target,
            w.origin,
            w.conversation_id,
            w.message_id,
            w.note,
        ]
        for w in _memory(services).log.list(limit=limit)
    ]


def _what(args: dict[str, Any]) -> str:
    if "content" in args:
        return f"{args.get('label', '')}: {args['content']}".strip(": ")
    if "new_content" in args:
        return f"{args.get('label', '')}: {args.get('old_content', '')!r} → {args['new_content']!r}"
    return str(args.get("text") or args.get("value") or args)


def _origin(kind: str, conversation_id: str, message_id: str) -> str:
    parts = [kind] + ([f"conversation {conversation_id}"] if conversation_id else [])
    return " · ".join(parts + ([f"message {message_id}"] if message_id else []))


# which memories fed an answer


def answer_choices(services: Services, conversation_id: str | None) -> list[tuple[str, str]]:
    if not conversation_id:
        return []
    try:
        messages = services.conversations.messages(conversation_id)
    except NotFoundError:
        return []
    choices = []
    for n, m in enumerate(messages):
        if m.role == "assistant":
            question = next((p.content for p in reversed(messages[:n]) if p.role == "user"), "")
            choices.append((f"#{m.seq} answer to: {' '.join(question.split())[:60]}", m.id))
    return list(reversed(choices))


def answer_memories(services: Services, message_id: str | None) -> str:
    """The recall and archival memories quoted in an answer's prompt, and the summary state."""
    if not message_id:
        return "Choose an answer."
    try:
        hits = _memory(services).memories_for_answer(message_id)
        message = services.conversations.message(message_id)
    except EngineError as e:
        return friendly(e)
    summary = _memory(services).summaries.get(message.conversation_id)
    lines = [
        f"Core memory blocks were in the prompt of every answer. Summary of earlier messages: "
        f"{'covers ' + str(summary.folded) + ' messages' if summary.text else 'none yet'}."
    ]
    if not hits:
        lines.append("No recall or archival memories were quoted for this answer.")
    lines += [_hit_line(n, h) for n, h in enumerate(hits, 1)]
    return "\n\n".join(lines)


def summary_text(services: Services, conversation_id: str | None) -> str:
    if not conversation_id:
        return ""
    summary = _memory(services).summaries.get(conversation_id)
    if not summary.text:
        return "No summary yet: the whole conversation still fits in the context window."
    if not summary.serves(services.conversations.messages(conversation_id)):
        return "No summary for this branch: the summary so far is of another branch of this chat."
    return (
        f"**Running summary** (covers {summary.folded} messages, up to #{summary.through_seq}):\n\n"
        f"> {escape_text(' '.join(summary.text.split()))}"
    )
