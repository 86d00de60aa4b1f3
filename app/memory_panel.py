"""The Memory tab: layout and wiring only; behaviour lives in memory_handlers."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from . import memory_handlers as mh

if TYPE_CHECKING:
    from engine.factory import Services


def build_memory_panel(services: Services) -> None:
    """Called inside ``with gr.Tab("Memory"):``."""
    gr.Markdown(
        "What Hearth remembers. **Core** blocks are in every prompt; **archival** memories and past "
        "**messages** are searched and quoted when relevant. Every change records who made it."
    )
    _auto_switch(services)
    _core_blocks(services)
    _search(services)
    archive = _archival(services)
    pending = _suggestions(services)
    _answers(services)
    with gr.Accordion("Where each write came from", open=False):
        log = gr.Dataframe(
            value=partial(mh.log_table, services),
            headers=mh.LOG_HEADERS,
            interactive=False,
            wrap=True,
            elem_id="mem-log",
        )
        refresh = gr.Button("Refresh", size="sm")
    refresh.click(
        lambda: (mh.log_table(services), mh.pending_table(services), mh.archival_table(services)),
        None,
        [log, pending, archive],
    )


def _auto_switch(s) -> None:
    auto = gr.Checkbox(
        value=lambda: mh.auto_memory_on(s),
        label="Remember what I say about myself automatically",
        info="After each answer, facts you state about yourself, your people, work and preferences "
        "become archival memories (deduplicated; deleting a chat deletes what only it said).",
        elem_id="mem-auto",
    )
    status = gr.Markdown(elem_id="mem-auto-status")
    auto.input(partial(mh.set_auto_memory, s), [auto], [status]).then(
        lambda: mh.auto_memory_on(s), None, [auto]
    )


def _core_blocks(s) -> None:
    with gr.Accordion("Core memory", open=True):
        with gr.Row():
            scope = gr.Dropdown(
                choices=mh.scope_choices(s), value=mh.GLOBAL, label="Scope", scale=2, elem_id="mem-scope"
            )
            label = gr.Dropdown(
                choices=mh.block_choices(s), value="human", label="Block", scale=2, elem_id="mem-block"
            )
        first_text, first_info, first_limit = mh.block_view(s, "human")
        text = gr.Textbox(value=first_text, lines=6, max_lines=20, label="Text", elem_id="mem-block-text")
        limit = gr.State(first_limit)
        info = gr.Markdown(first_info, elem_id="mem-block-info")
        with gr.Row():
            save = gr.Button("Save block", variant="primary", size="sm", elem_id="mem-save")
            delete = gr.Button("Delete block", variant="stop", size="sm", elem_id="mem-delete")
        with gr.Row():
            new_label = gr.Textbox(
                label="New block name", placeholder="e.g. projects", scale=3, elem_id="mem-new"
            )
            new_limit = gr.Number(label="Limit (chars)", value=2000, precision=0, scale=1)
            create = gr.Button("Add block", size="sm", scale=1, elem_id="mem-create")
        status = gr.Markdown(elem_id="mem-status")

    def show_block(chosen_label, chosen_scope):
        return mh.block_view(s, chosen_label, chosen_scope)

    def rescope(chosen_scope):
        labels = mh.block_choices(s, chosen_scope)
        return gr.update(choices=labels, value=labels[0] if labels else None)

    def do_create(name, block_limit, chosen_scope):
        message = mh.create_block(s, name, block_limit, chosen_scope)
        labels, created = mh.block_choices(s, chosen_scope), (name or "").strip()
        return message, gr.update(choices=labels, value=created if created in labels else None)

    scope.focus(lambda: gr.update(choices=mh.scope_choices(s)), None, [scope])
    scope.change(rescope, [scope], [label])
    label.change(show_block, [label, scope], [text, info, limit])
    text.input(mh.fill_label, [text, limit], [info])  # live counter; over-limit text is flagged before saving
    save.click(partial(mh.save_block, s), [label, text, scope], [status]).then(
        show_block, [label, scope], [text, info, limit]
    )
    create.click(do_create, [new_label, new_limit, scope], [status, label])
    delete.click(partial(mh.delete_block, s), [label, scope], [status]).then(rescope, [scope], [label])


def _search(s) -> None:
    with gr.Accordion("Search memory", open=True):
        with gr.Row():
            query = gr.Textbox(
                placeholder="Search memories and past messages…",
                show_label=False,
                scale=4,
                elem_id="mem-query",
            )
            start = gr.Textbox(placeholder="from 2025-01-31", show_label=False, scale=1)
            end = gr.Textbox(placeholder="to 2025-02-28", show_label=False, scale=1)
            go = gr.Button("Search", scale=1, elem_id="mem-search")
        results = gr.Markdown(elem_id="mem-results")
    for trigger in (go.click, query.submit):
        trigger(partial(mh.search, s), [query, start, end], [results])


def _archival(s) -> gr.Dataframe:
    with gr.Accordion("Archival memory", open=False):
        archive = gr.Dataframe(
            value=partial(mh.archival_table, s),
            headers=mh.ARCHIVAL_HEADERS,
            interactive=False,
            wrap=True,
            elem_id="mem-archival",
        )
        with gr.Row():
            fact = gr.Textbox(placeholder="A fact to keep…", show_label=False, scale=4, elem_id="mem-fact")
            add = gr.Button("Keep", size="sm", scale=1, elem_id="mem-add")
        with gr.Row():
            entry_id = gr.Textbox(
                placeholder="id to edit or delete", show_label=False, scale=4, elem_id="mem-entry-id"
            )
            remove = gr.Button("Delete", variant="stop", size="sm", scale=1, elem_id="mem-remove")
        with gr.Row():
            new_text = gr.Textbox(
                placeholder="new text for that memory", show_label=False, scale=4, elem_id="mem-entry-text"
            )
            edit = gr.Button("Save edit", size="sm", scale=1, elem_id="mem-edit")
        status = gr.Markdown()
    table = partial(mh.archival_table, s)
    add.click(partial(mh.add_archival, s), [fact], [status]).then(table, None, [archive])
    remove.click(partial(mh.delete_archival, s), [entry_id], [status]).then(table, None, [archive])
    edit.click(partial(mh.edit_archival, s), [entry_id, new_text], [status]).then(table, None, [archive])
    return archive


def _suggestions(s) -> gr.Dataframe:
    with gr.Accordion("Suggestions waiting for approval", open=False):
        gr.Markdown("Writes the model asked for after reading retrieved text are never applied on their own.")
        pending = gr.Dataframe(
            value=partial(mh.pending_table, s),
            headers=mh.PENDING_HEADERS,
            interactive=False,
            wrap=True,
            elem_id="mem-pending",
        )
        with gr.Row():
            pending_id = gr.Textbox(placeholder="suggestion id", show_label=False, scale=4)
            approve = gr.Button("Approve", size="sm", scale=1, elem_id="mem-approve")
            reject = gr.Button("Reject", variant="stop", size="sm", scale=1, elem_id="mem-reject")
        status = gr.Markdown()
    table = partial(mh.pending_table, s)
    approve.click(partial(mh.resolve_pending, s, approve=True), [pending_id], [status]).then(
        table, None, [pending]
    )
    reject.click(partial(mh.resolve_pending, s, approve=False), [pending_id], [status]).then(
        table, None, [pending]
    )
    return pending


def _answers(s) -> None:
    with gr.Accordion("Which memories fed an answer", open=False):
        with gr.Row():
            conversation = gr.Dropdown(
                choices=mh.conversation_choices(s), label="Conversation", scale=2, elem_id="mem-conversation"
            )
            answer = gr.Dropdown(choices=[], label="Answer", scale=3, elem_id="mem-answer")
        summary = gr.Markdown(elem_id="mem-summary")
        fed = gr.Markdown(elem_id="mem-fed")

    def pick_conversation(conversation_id):
        return gr.update(choices=mh.answer_choices(s, conversation_id), value=None), mh.summary_text(
            s, conversation_id
        )

    conversation.focus(lambda: gr.update(choices=mh.conversation_choices(s)), None, [conversation])
    conversation.change(pick_conversation, [conversation], [answer, summary])
    answer.change(partial(mh.answer_memories, s), [answer], [fed])
