"""Core memory: small named blocks rendered into the stable start of every prompt.

Blocks are global by default; a block with the same label scoped to one conversation
overrides the global one there. Each block has a character limit; a write that would
exceed it is refused with a message saying by how much, and nothing is changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MemoryError_, NotFoundError
from ..prompt import keep_tail
from ..store.conversations import now_iso
from ..store.db import Database
from .migrations import DEFAULT_BLOCK_LIMIT, DEFAULT_BLOCKS
from .provenance import Origin, record_write

LABEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
REQUIRED_LABELS = tuple(label for label, _, _ in DEFAULT_BLOCKS)
MAX_LIMIT = 20_000

#: compact markdown: the bundled 135M model echoed bracketed or XML-tagged variants into answers
CORE_HEADER = "## Core memory"


@dataclass(frozen=True, kw_only=True)
class Block:
    label: str
    value: str
    limit: int
    #: "" for a global block, else the conversation it belongs to
    conversation_id: str = ""
    description: str = ""
    updated_at: str = ""
    updated_by: str = ""

    @property
    def fill(self) -> str:
        return f"{len(self.value)}/{self.limit} chars"

    @property
    def target(self) -> str:
        return f"block:{self.conversation_id}:{self.label}" if self.conversation_id else f"block:{self.label}"


def check_label(label: str) -> str:
    label = (label or "").strip()
    if not LABEL.match(label):
        raise MemoryError_(
            f"Block names are 1-32 characters of a-z, 0-9 and _, starting with a letter; got {label!r}."
        )
    return label


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise MemoryError_(
            f"A block's limit must be a whole number of characters from 1 to {MAX_LIMIT}; got {limit!r}."
        )
    return limit


def check_fits(block: Block, value: str) -> str:
    if len(value) > block.limit:
        raise MemoryError_(
            f"Block '{block.label}' holds at most {block.limit} characters; the new text has {len(value)} "
            f"({len(value) - block.limit} too many). Shorten it, or raise the block's limit. Nothing was changed."
        )
    return value


class CoreMemory:
    def __init__(self, database: Database):
        self._database = database

    # reading

    def blocks(self, conversation_id: str | None = None) -> list[Block]:
        """The blocks a conversation sees (its own override global ones), persona and human first."""
        with self._database.read() as db:
            rows = list(
                db["memory_blocks"].rows_where(
                    "conversation_id = '' or conversation_id = ?",
                    [conversation_id or ""],
                    order_by="created_at, label",
                )
            )
        chosen: dict[str, Block] = {}
        for row in rows:
            block = _block(row)
            if block.label not in chosen or block.conversation_id:
                chosen[block.label] = block
        order = {label: i for i, label in enumerate(REQUIRED_LABELS)}
        return sorted(chosen.values(), key=lambda b: order.get(b.label, len(order)))

    def get(self, label: str, conversation_id: str | None = None) -> Block:
        label = check_label(label)
        for block in self.blocks(conversation_id):
            if block.label == label:
                return block
        known = ", ".join(b.label for b in self.blocks(conversation_id)) or "none"
        raise NotFoundError(
            f"There is no core memory block named '{label}' (blocks: {known}). Create it first."
        )

    def render(
        self, conversation_id: str | None, *, max_tokens: int, count_tokens: Callable[[str], int]
    ) -> str:
        """The core memory section of the system message, with each block's fill level.

        Blocks longer than fits ``max_tokens`` are shown cut (their end kept, where the
        newest lines are) so a small context never overflows; the stored text is intact.
        """
        blocks = self.blocks(conversation_id)
        if not blocks:
            return ""
        text = "\n".join([CORE_HEADER] + [_render_block(b, b.value) for b in blocks])
        if count_tokens(text) <= max_tokens:
            return text
        heads = [count_tokens(_render_block(b, "…")) + 1 for b in blocks]
        room = max_tokens - count_tokens(CORE_HEADER) - sum(heads)
        allowed = _allot([count_tokens(b.value) for b in blocks], max(0, room))
        shown = [_tail_within(b.value, n, count_tokens) for b, n in zip(blocks, allowed)]
        text = "\n".join([CORE_HEADER] + [_render_block(b, v) for b, v in zip(blocks, shown)])
        # so many blocks that even their headings overflow: a cut list still never overflows the prompt
        return text if count_tokens(text) <= max_tokens else _tail_within(text, max_tokens - 1, count_tokens)

    # writing: each runs in one transaction together with its provenance row

    def create(
        self,
        label: str,
        *,
        limit: int = DEFAULT_BLOCK_LIMIT,
        value: str = "",
        description: str = "",
        conversation_id: str = "",
        origin: Origin,
    ) -> Block:
        label, limit = check_label(label), check_limit(limit)
        block = Block(
            label=label, value="", limit=limit, conversation_id=conversation_id or "", description=description
        )
        check_fits(block, value)
        now = now_iso()
        with self._database.tx() as db:
            if db["memory_blocks"].count_where("id = ?", [_row_id(block)]):
                raise MemoryError_(f"A block named '{label}' already exists here; edit it instead.")
            db.table("memory_blocks").insert(
                {
                    "id": _row_id(block),
                    "label": label,
                    "conversation_id": block.conversation_id,
                    "value": value,
                    "char_limit": limit,
                    "description": description,
                    "created_at": now,
                    "updated_at": now,
                    "updated_by": origin.describe(),
                }
            )
            record_write(
                db,
                action="block_create",
                target=block.target,
                origin=origin,
                args={
                    "label": label,
                    "limit": limit,
                    "value": value,
                    "conversation_id": block.conversation_id,
                },
            )
        return self.get(label, conversation_id or None)

    def set(self, label: str, value: str, *, conversation_id: str | None = None, origin: Origin) -> Block:
        """Replace a block's whole text (the block a conversation sees under that label)."""
        return self._update(
            label,
            conversation_id,
            origin,
            "block_set",
            lambda b: value,
            lambda b: {"label": b.label, "value": value},
        )

    def append(
        self, label: str, content: str, *, conversation_id: str | None = None, origin: Origin
    ) -> Block:
        content = _one_line(content)
        if not content:
            raise MemoryError_("There is nothing to append: the text is empty.")
        return self._update(
            label,
            conversation_id,
            origin,
            "block_append",
            lambda b: f"{b.value}\n{content}" if b.value else content,
            lambda b: {"label": b.label, "content": content},
        )

    def replace(
        self, label: str, old: str, new: str, *, conversation_id: str | None = None, origin: Origin
    ) -> Block:
        if not old:
            raise MemoryError_("Say which text to replace: the old text is empty.")

        def replaced(block: Block) -> str:
            if old not in block.value:
                raise MemoryError_(f"Block '{block.label}' does not contain {old!r}; nothing was replaced.")
            return block.value.replace(old, new)

        return self._update(
            label,
            conversation_id,
            origin,
            "block_replace",
            replaced,
            lambda b: {"label": b.label, "old_content": old, "new_content": new},
        )

    def _update(self, label, conversation_id, origin: Origin, action: str, make_value, make_args) -> Block:
        # read, check and write under one lock and transaction so concurrent appends never lose text
        with self._database.tx() as db:
            block = self.get(label, conversation_id)
            value = check_fits(block, make_value(block))
            db.table("memory_blocks").update(
                _row_id(block), {"value": value, "updated_at": now_iso(), "updated_by": origin.describe()}
            )
            record_write(db, action=action, target=block.target, origin=origin, args=make_args(block))
        return self.get(label, conversation_id)

    def set_limit(
        self, label: str, limit: int, *, conversation_id: str | None = None, origin: Origin
    ) -> Block:
        block = self.get(label, conversation_id)
        limit = check_limit(limit)
        if len(block.value) > limit:
            raise MemoryError_(
                f"Block '{block.label}' already holds {len(block.value)} characters; shorten it before lowering "
                f"its limit to {limit}."
            )
        with self._database.tx() as db:
            db.table("memory_blocks").update(_row_id(block), {"char_limit": limit, "updated_at": now_iso()})
            record_write(
                db,
                action="block_limit",
                target=block.target,
                origin=origin,
                args={"label": block.label, "limit": limit},
            )
        return self.get(label, conversation_id)

    def delete(self, label: str, *, conversation_id: str | None = None, origin: Origin) -> None:
        block = self.get(label, conversation_id)
        if block.label in REQUIRED_LABELS and not block.conversation_id:
            raise MemoryError_(f"'{block.label}' is a built-in block: empty it instead of deleting it.")
        with self._database.tx() as db:
            db.table("memory_blocks").delete(_row_id(block))
            record_write(
                db,
                action="block_delete",
                target=block.target,
                origin=origin,
                args={"label": block.label, "value": block.value},
            )


def _row_id(block: Block) -> str:
    return f"{block.conversation_id}:{block.label}" if block.conversation_id else block.label


def _block(row: dict) -> Block:
    return Block(
        label=row["label"],
        value=row["value"] or "",
        limit=row["char_limit"],
        conversation_id=row["conversation_id"] or "",
        description=row["description"] or "",
        updated_at=row["updated_at"] or "",
        updated_by=row["updated_by"] or "",
    )


def _render_block(block: Block, shown: str) -> str:
    cut = ", shown in part" if shown != block.value else ""
    return f"### {block.label} ({block.fill}{cut})\n{shown.strip() or '(empty)'}"


def _allot(sizes: list[int], total: int) -> list[int]:
    """Share ``total`` tokens among blocks: small blocks keep all, the rest split what is left."""
    allowed = [0] * len(sizes)
    remaining = total
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for done, i in enumerate(order):
        allowed[i] = min(sizes[i], remaining // (len(sizes) - done))
        remaining -= allowed[i]
    return allowed


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def _tail_within(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> str:
    """The end of a block that fits, marked as cut when it is."""
    tail = keep_tail(text, max_tokens, count_tokens)
    return tail if tail == text or not tail else "…" + tail
