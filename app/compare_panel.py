"""Compare (side by side): the last turn re-run with two or three settings, in columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from . import compare_handlers as ch
from .handlers import conversation_history

if TYPE_CHECKING:
    from engine.factory import Services


@dataclass
class _Columns:
    """One entry per column, left to right."""

    picks: list[gr.Dropdown] = field(default_factory=list)
    seeds: list[gr.Number] = field(default_factory=list)
    outs: list[gr.Markdown] = field(default_factory=list)
    keeps: list[gr.Button] = field(default_factory=list)


def build_compare_panel(
    services: Services,
    *,
    chatbot: gr.Chatbot,
    conversation_id: gr.State,
    controls: Sequence[gr.components.Component],
    browser_here: bool = True,
) -> None:
    """An accordion under the chat: pick settings per column, Compare, Keep one. ``browser_here``
    as for the chat's own turns (app.ui.build_ui)."""
    s = services
    with gr.Accordion("⚖️ Compare side by side", open=False, elem_id="compare"):
        gr.Markdown(
            "Answers your last message again with each setting, one after another on the same model. "
            "Every answer is kept as a branch; **Keep** makes one the conversation's answer. "
            "A seed makes a column reproducible (-1 draws one and shows it)."
        )
        columns = _columns(ch.column_choices(s))
        run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        note = gr.Markdown(elem_id="compare-note")
        ids = gr.State([])

    def compare(cid, *values):
        yield from ch.run_compare(s, cid, values[0:3], values[3:6], *values[6:], spare_core=browser_here)

    run.click(
        compare,
        [conversation_id, *columns.picks, *columns.seeds, *controls],
        [*columns.outs, ids],
        concurrency_limit=4,
        concurrency_id="chat",
    ).then(partial(conversation_history, s), [conversation_id], chatbot)
    _wire_columns(s, columns, conversation_id, ids, chatbot, note)


def _columns(choices: list[str]) -> _Columns:
    """Three columns: the current settings, another preset, and one that is off until picked."""
    columns = _Columns()
    with gr.Row():
        for i, default in enumerate((ch.CURRENT, _other(choices), ch.OFF)):
            with gr.Column(min_width=200):
                options = choices + ([ch.OFF] if i == 2 else [])
                columns.picks.append(
                    gr.Dropdown(
                        options, value=default, label=f"Settings {i + 1}", elem_id=f"compare-pick-{i + 1}"
                    )
                )
                columns.seeds.append(
                    gr.Number(value=-1, precision=0, label="Seed", elem_id=f"compare-seed-{i + 1}")
                )
                columns.outs.append(gr.Markdown(elem_id=f"compare-col-{i + 1}"))
                columns.keeps.append(gr.Button(f"Keep {i + 1}", size="sm", elem_id=f"compare-keep-{i + 1}"))
    return columns


def _wire_columns(
    s: Services,
    columns: _Columns,
    conversation_id: gr.State,
    ids: gr.State,
    chatbot: gr.Chatbot,
    note: gr.Markdown,
) -> None:
    picks = columns.picks
    for i, button in enumerate(columns.keeps):
        button.click(partial(_keep, s, i), [conversation_id, ids], [chatbot, note])
    for pick in picks:  # presets saved since the page loaded
        pick.focus(
            lambda p=pick: gr.Dropdown(choices=ch.column_choices(s) + ([ch.OFF] if p is picks[2] else [])),
            None,
            pick,
        )


def _keep(services: Services, index: int, conversation_id: str | None, ids: list[str]):
    return ch.keep(services, conversation_id, ids, index)


def _other(choices: list[str]) -> str:
    """A second column that differs from the first: a preset other than the current settings."""
    presets = [c for c in choices if c != ch.CURRENT]
    return next((p for p in presets if p != "Balanced"), presets[0] if presets else ch.CURRENT)
