"""The Documents tab: layout and wiring only; behaviour lives in documents_handlers."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from . import documents_handlers as dh

if TYPE_CHECKING:
    from engine.factory import Services


def build_documents_panel(services: Services) -> None:
    """Called inside ``with gr.Tab("Documents"):``."""
    s = services
    gr.Markdown(
        "Add files, then ask about them in Chat: answers cite the passages they use. "
        "PDF, DOCX, HTML, Markdown, text, CSV, JSON and source code; images go to Images."
    )
    with gr.Row():
        collection = gr.Dropdown(
            choices=dh.collection_choices(s),
            value=dh.DEFAULT_COLLECTION,
            label="Collection",
            elem_id="docs-collection",
            scale=3,
        )
        new_name = gr.Textbox(
            label="New collection", placeholder="e.g. taxes-2024", elem_id="docs-new-name", scale=2
        )
        create = gr.Button("Create", size="sm", scale=1, elem_id="docs-create")
        drop = gr.Button("Delete collection", variant="stop", size="sm", scale=1, elem_id="docs-drop")
    collection_note = gr.Markdown(elem_id="docs-collection-note")
    with gr.Accordion("Add files", open=True):
        files = gr.File(
            file_count="multiple",
            file_types=dh.UPLOAD_TYPES,
            type="filepath",
            label="Drop files here",
            elem_id="docs-upload",
        )
        with gr.Row():
            add = gr.Button("Add to collection", variant="primary", elem_id="docs-add", scale=4)
            # shown while an upload runs: it ends after the file in progress, nothing half-written
            stop = gr.Button("Stop", variant="stop", elem_id="docs-stop", scale=1, visible=False)
        stop_note = gr.Markdown(elem_id="docs-stop-note")
        added = gr.Markdown(elem_id="docs-added")
    with gr.Accordion("Watched folders", open=False):
        gr.Markdown(
            "Folders on this machine kept in sync with the chosen collection: files added, changed, "
            "renamed or deleted there follow within seconds, while Hearth runs. Links leading out of "
            "a folder are skipped."
        )
        with gr.Row():
            folder = gr.Textbox(
                label="Folder", placeholder="/home/me/Notes", scale=4, elem_id="docs-watch-folder"
            )
            watch = gr.Button("Watch", size="sm", scale=1, elem_id="docs-watch")
        watched = gr.Dataframe(
            value=partial(dh.watched_table, s),
            headers=dh.WATCH_HEADERS,
            interactive=False,
            wrap=True,
            elem_id="docs-watched",
        )
        with gr.Row():
            watched_pick = gr.Dropdown(
                choices=dh.watched_choices(s), label="Watched folder", scale=4, elem_id="docs-watched-pick"
            )
            unwatch = gr.Button("Stop watching", size="sm", scale=1, elem_id="docs-unwatch")
        watch_note = gr.Markdown(elem_id="docs-watch-note")
        # only while folders are watched: a tick is a request, every 3 s, from every open page
        ticker = gr.Timer(3, active=bool(dh.watched_choices(s)))
    with gr.Accordion("Documents in this collection", open=True):
        table = gr.Dataframe(
            value=partial(dh.documents_table, s, dh.DEFAULT_COLLECTION),
            headers=dh.TABLE_HEADERS,
            interactive=False,
            wrap=True,
            elem_id="docs-table",
        )
        with gr.Row():
            chosen = gr.Dropdown(
                choices=dh.document_choices(s, dh.DEFAULT_COLLECTION),
                label="Document",
                scale=3,
                elem_id="docs-chosen",
            )
            refresh = gr.Button("Refresh", size="sm", scale=1)
            delete = gr.Button("Delete document", variant="stop", size="sm", scale=1, elem_id="docs-delete")
        deleted = gr.Markdown()
    with gr.Accordion("Search", open=True):
        with gr.Row():
            query = gr.Textbox(
                placeholder="Search your documents…", show_label=False, scale=4, elem_id="docs-query"
            )
            go = gr.Button("Search", scale=1, elem_id="docs-search")
        with gr.Row():
            k = gr.Slider(1, 20, value=5, step=1, label="Results")
            mode = gr.Radio(["hybrid", "dense", "bm25"], value="hybrid", label="Mode")
            multi = gr.Checkbox(label="Multi-query (uses the chat model)")
            hyde = gr.Checkbox(label="HyDE (uses the chat model)")
        results = gr.Markdown(elem_id="docs-results")
    with gr.Accordion("Retrieval in chat", open=False):
        chat_multi = gr.Checkbox(label="Rewrite chat questions into several queries (multi-query)")
        chat_hyde = gr.Checkbox(label="Search with a hypothetical answer (HyDE)")
        chat_note = gr.Markdown()

    def show(name):
        return dh.documents_table(s, name), gr.update(choices=dh.document_choices(s, name), value=None)

    stops = dh.UploadStops()

    def do_upload(paths, name, request: gr.Request, progress=gr.Progress()):
        def tick(state):
            progress(state.fraction, desc=dh.progress_text(state))

        cancel = stops.begin(request.session_hash or "")
        try:
            return dh.upload(s, paths, name, on_progress=tick, cancel=cancel)
        finally:
            stops.end(request.session_hash or "", cancel)

    def do_stop(request: gr.Request):
        return stops.stop(request.session_hash or "")

    def uploading(running: bool):
        return gr.update(visible=running), ""

    def show_watched():
        return dh.watched_table(s), gr.update(choices=dh.watched_choices(s))

    def refresh_watched(name):
        """Watched folders change the documents behind the page's back: show it (keeping choices made)."""
        rows = dh.watched_table(s)
        if not rows:
            return gr.skip(), gr.skip(), gr.skip()
        return rows, dh.documents_table(s, name), gr.update(choices=dh.document_choices(s, name))

    def do_watch(path, name):
        note, watched_now = dh.watch_folder(s, path, name), dh.watched_choices(s)
        return note, *show_watched(), gr.Timer(active=bool(watched_now))

    def do_unwatch(path):
        note, watched_now = dh.unwatch_folder(s, path), dh.watched_choices(s)
        picked = gr.update(choices=watched_now, value=None)
        return note, dh.watched_table(s), picked, gr.Timer(active=bool(watched_now))

    def do_create(name):
        message, created = dh.create_collection(s, name)
        choices = dh.collection_choices(s)
        return message, gr.update(choices=choices, value=created) if created else gr.update(choices=choices)

    def do_drop(name):
        message = dh.delete_collection(s, name)
        return message, gr.update(choices=dh.collection_choices(s), value=dh.DEFAULT_COLLECTION)

    add.click(partial(uploading, True), None, [stop, stop_note], queue=False).then(
        do_upload, [files, collection], added, concurrency_id="documents"
    ).then(partial(uploading, False), None, [stop, stop_note], queue=False).then(
        show, [collection], [table, chosen]
    )
    # its own queue slot, never behind the upload it stops
    stop.click(do_stop, None, stop_note, concurrency_limit=None, show_progress="hidden")
    watch.click(do_watch, [folder, collection], [watch_note, watched, watched_pick, ticker])
    unwatch.click(do_unwatch, [watched_pick], [watch_note, watched, watched_pick, ticker])
    ticker.tick(refresh_watched, [collection], [watched, table, chosen], show_progress="hidden")
    create.click(do_create, [new_name], [collection_note, collection])
    drop.click(do_drop, [collection], [collection_note, collection])
    collection.change(show, [collection], [table, chosen])
    refresh.click(show, [collection], [table, chosen])
    delete.click(partial(dh.delete_document, s), [chosen], deleted).then(show, [collection], [table, chosen])
    for trigger in (go.click, query.submit):
        trigger(
            partial(dh.search, s),
            [query, collection, k, mode, multi, hyde],
            results,
            concurrency_id="documents",
        )
    for box in (chat_multi, chat_hyde):
        box.change(partial(dh.set_chat_rewriting, s), [chat_multi, chat_hyde], chat_note)
