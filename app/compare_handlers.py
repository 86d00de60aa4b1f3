"""Plain functions behind "Compare" (side by side). Tests call them without a browser."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from engine.compare import MAX_COLUMNS, ColumnEvent, CompareColumn, Queued, compare_turn, seeded
from engine.config import GenerationConfig
from engine.errors import ConfigError
from engine.types import Done, TextDelta

from .handlers import ChatHistory, config_from_controls, conversation_history, friendly
from .markup import escape_inline, safe_markdown
from .page_updates import UpdateClock

if TYPE_CHECKING:
    from engine.factory import Services

CURRENT = "(current settings)"
OFF = "(off)"
#: the settings shown in a column's heading (all of them are saved with the answer)
SHOWN = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "max_tokens")

#: what each column shows, the ids of the answers (for Keep), and whether Keep applies
CompareView = tuple[str, str, str, list[str]]


def column_choices(services: Services) -> list[str]:
    return [CURRENT, *services.presets.names()]


def build_columns(
    services: Services, choices: Sequence[str], seeds: Sequence[float | None], controls: Sequence[Any]
) -> list[CompareColumn]:
    """A column per chosen preset (or the sliders' current settings), each with its seed."""
    columns = []
    for choice, seed in zip(choices, seeds, strict=True):
        if not choice or choice == OFF:
            continue
        config = config_from_controls(list(controls)) if choice == CURRENT else services.presets.get(choice)
        if seed is not None:
            config = config.replace(seed=int(seed))
        columns.append(CompareColumn(label=choice, config=config))
    return seeded(columns)


def heading(column: CompareColumn, done: Done | None = None) -> str:
    config: GenerationConfig = column.config
    settings = " · ".join(f"{name} {getattr(config, name)}" for name in SHOWN)
    parts = [f"**{escape_inline(column.label)}** · seed {config.seed}"]
    if done is not None:
        parts.append(f"{done.timings.tokens_per_s:.1f} tok/s · {done.usage.completion_tokens} tokens")
    return " · ".join(parts) + f"\n\n<small>{escape_inline(settings)}</small>\n\n"


def run_compare(
    services: Services,
    conversation_id: str | None,
    choices: Sequence[str],
    seeds: Sequence[float | None],
    *controls: Any,
    spare_core: bool = False,
) -> Iterator[CompareView]:
    """Stream the columns. Yields (column 1, column 2, column 3, answer ids so far).
    ``spare_core``: the page's browser runs on this machine (see Backend.stream_chat)."""
    view = _View()
    try:
        if not conversation_id:
            raise ConfigError("Open or start a conversation first: Compare answers its last message again.")
        view.columns = build_columns(services, choices, seeds, controls)
        view.notes = ["⏳ waiting for its turn…"] * len(view.columns)
        yield view.render()
        clock = UpdateClock()  # as the chat shows an answer
        for item in compare_turn(services.chat, conversation_id, view.columns, spare_core=spare_core):
            view.take(item)
            # every event but a later piece of a column's text shows at once
            later_text = isinstance(item.event, TextDelta) and view.texts[item.column] != item.event.text
            if clock.due(first=not later_text):
                yield view.render()
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        view.error = friendly(e)
        yield view.render()


class _View:
    """What the columns show so far: untrusted text is rendered through safe_markdown."""

    def __init__(self) -> None:
        self.columns: list[CompareColumn] = []
        self.texts: list[str] = ["", "", ""]
        self.notes: list[str] = []
        self.done: dict[int, Done] = {}
        self.error = ""

    def take(self, item: ColumnEvent) -> None:
        event, i = item.event, item.column
        if isinstance(event, Queued):
            self.notes[i] = f"⏳ queued: waiting for the model ({event.running} other answer(s) streaming)…"
        elif isinstance(event, TextDelta):
            self.notes[i], self.texts[i] = "", self.texts[i] + event.text
        elif isinstance(event, Done):
            self.notes[i], self.texts[i], self.done[i] = "", event.text, event

    def render(self) -> CompareView:
        shown = []
        for i in range(MAX_COLUMNS):
            if i >= len(self.columns):
                shown.append(self.error if i == 0 else "")
                continue
            body = self.notes[i] or safe_markdown(self.texts[i])
            shown.append(heading(self.columns[i], self.done.get(i)) + body)
        if self.error and self.columns:
            shown[0] += "\n\n" + self.error
        ids = [self.done[i].message_id if i in self.done else "" for i in range(len(self.columns))]
        return shown[0], shown[1], shown[2], ids


def keep(
    services: Services, conversation_id: str | None, ids: list[str], index: int
) -> tuple[ChatHistory, str]:
    """Make column ``index``'s answer the conversation's; the others stay as sibling branches."""
    if not conversation_id or index >= len(ids) or not ids[index]:
        return conversation_history(services, conversation_id), "Run a comparison first."
    services.branches.switch(ids[index])
    return conversation_history(
        services, conversation_id
    ), f"Kept answer {index + 1}; the others stay as branches."
