"""Side by side: the last turn answered again under two or three settings.

Each column is a regenerate of the last user message with its own GenerationConfig, so every
answer is saved as a sibling branch (engine/store/tree.py) and the user keeps one by switching
to it. The model answers one request at a time: columns run one after another through the
same queue as every other turn, and a column that must wait says so (``Queued``) first.
A column whose seed is -1 gets a drawn seed before it runs, so any column can be re-run
exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .chat import ChatService
from .config import GenerationConfig
from .errors import ConfigError
from .types import Done, Event

MAX_COLUMNS = 3


@dataclass(frozen=True, kw_only=True)
class CompareColumn:
    """One side of a comparison: a name for people (a preset's, or "current settings") and its settings."""

    label: str
    config: GenerationConfig


@dataclass(frozen=True, kw_only=True)
class Queued:
    """The column waits for the model: ``running`` other answers are streaming."""

    running: int


@dataclass(frozen=True, kw_only=True)
class ColumnEvent:
    """What happened in column ``column`` (0-based): a chat event or Queued."""

    column: int
    event: Event | Queued


def seeded(columns: Sequence[CompareColumn]) -> list[CompareColumn]:
    """The columns with every random seed (-1) replaced by a drawn one."""
    out = []
    for column in columns:
        if column.config.seed < 0:
            column = CompareColumn(
                label=column.label, config=column.config.replace(seed=random.randrange(2**31))
            )
        out.append(column)
    return out


def compare_turn(
    chat: ChatService, conversation_id: str, columns: Sequence[CompareColumn], *, spare_core: bool = False
) -> Iterator[ColumnEvent]:
    """Answer the conversation's last user message once per column; yield each column's events.

    Columns must carry fixed seeds (see ``seeded``). Every answer is kept as a sibling; the
    last column's is the one shown until the user keeps another (``Branches.switch``).
    """
    if not 2 <= len(columns) <= MAX_COLUMNS:
        raise ConfigError(f"Compare takes 2 to {MAX_COLUMNS} settings; got {len(columns)}.", field="compare")
    for i, column in enumerate(columns):
        running = chat.running_turns()
        if running:
            yield ColumnEvent(column=i, event=Queued(running=running))
        turn = chat.stream_turn(conversation_id, "", column.config, mode="regenerate", spare_core=spare_core)
        for event in turn:
            yield ColumnEvent(column=i, event=event)


def answers(events: Sequence[ColumnEvent]) -> dict[int, Done]:
    """Each column's Done event (its saved message id, text, usage and timings)."""
    return {e.column: e.event for e in events if isinstance(e.event, Done)}
