"""The Documents tab: layout and wiring only; behaviour lives in documents_handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from . import documents_handlers as dh

if TYPE_CHECKING:
    from engine.factory import Services


@dataclass
class _CollectionRow:
    collection: gr.Dropdown
    new_name: gr.Textbox
    create: gr.Button
    drop: gr.Button
    note: gr.Markdown


@dataclass
class _AddFiles:
    files: gr.File
    add: gr.Button
    stop: gr.Button
    stop_note: gr.Markdown
    added: gr.Markdown


@dataclass
class _WatchedFolders:
    folder: gr.Textbox
    watch: gr.Button
    watched: gr.Dataframe
    pick: gr.Dropdown
    unwatch: gr.Button
    note: gr.Markdown
    ticker: gr.Timer


@dataclass
class _DocumentList:
    table: gr.Dataframe
    chosen: gr.Dropdown
    refresh: gr.Button
    delete: gr.Button
    deleted: gr.Markdown


@dataclass
class _Search:
    query: gr.Textbox
    go: gr.Button
    k: gr.Slider
    mode: gr.Radio
    multi: gr.Checkbox
    hyde: gr.Checkbox
    results: gr.Markdown


@dataclass
class _ChatRetrieval:
    multi: gr.Checkbox
    hyde: gr.Checkbox
    note: gr.Markdown


def build_documents_panel(services: Services, demo: gr.Blocks) -> None:
    """Called inside ``with gr.Tab("Documents"):`` of ``demo``."""
    s = services
    gr.Markdown(
        "Add files, then ask about them in Chat: answers cite the passages they use. "
        "PDF, Word (.docx), OpenDocument text (.odt), PowerPoint (.pptx), Excel (.xlsx), EPUB, HTML, "
        "Markdown, notebooks (.ipynb), text, CSV, JSON and source code; images go to Images."
    )
    top = _collection_row(s)
    adding = _add_files()
    folders = _watched_folders(s)
    documents = _document_list(s)
    search = _search()
    chat = _chat_retrieval()
    show = _document_view(s)
    _wire_files(s, demo, top, adding, folders, documents, show)
    _wire_collection(s, top, documents, show)
    _wire_search(s, top, search, chat)


def _collection_row(s: Services) -> _CollectionRow:
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
    note = gr.Markdown(elem_id="docs-collection-note")
    return _CollectionRow(collection, new_name, create, drop, note)


def _add_files() -> _AddFiles:
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
    return _AddFiles(files, add, stop, stop_note, added)


def _watched_folders(s: Services) -> _WatchedFolders:
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
            pick = gr.Dropdown(
                choices=dh.watched_choices(s), label="Watched folder", scale=4, elem_id="docs-watched-pick"
            )
            unwatch = gr.Button("Stop watching", size="sm", scale=1, elem_id="docs-unwatch")
        note = gr.Markdown(elem_id="docs-watch-note")
        # only while folders are watched: a tick is a request, every 3 s, from every open page
        ticker = gr.Timer(3, active=bool(dh.watched_choices(s)))
    return _WatchedFolders(folder, watch, watched, pick, unwatch, note, ticker)


def _document_list(s: Services) -> _DocumentList:
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
    return _DocumentList(table, chosen, refresh, delete, deleted)


def _search() -> _Search:
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
    return _Search(query, go, k, mode, multi, hyde, results)


def _chat_retrieval() -> _ChatRetrieval:
    with gr.Accordion("Retrieval in chat", open=False):
        multi = gr.Checkbox(label="Rewrite chat questions into several queries (multi-query)")
        hyde = gr.Checkbox(label="Search with a hypothetical answer (HyDE)")
        note = gr.Markdown()
    return _ChatRetrieval(multi, hyde, note)


def _document_view(s: Services) -> Callable[[str], tuple[Any, Any]]:
    """The collection's table and document choices, shown after every change to them."""

    def show(name):
        return dh.documents_table(s, name), gr.update(choices=dh.document_choices(s, name), value=None)

    return show


def _wire_files(
    s: Services,
    demo: gr.Blocks,
    top: _CollectionRow,
    adding: _AddFiles,
    folders: _WatchedFolders,
    documents: _DocumentList,
    show: Callable[[str], tuple[Any, Any]],
) -> None:
    """Uploads and watched folders, both of which add documents to the chosen collection."""
    _wire_upload(s, top, adding, documents, show)

    def refresh_watched(name):
        """Watched folders change the documents behind the page's back: show it (keeping choices made)."""
        rows = dh.watched_table(s)
        if not rows:
            return gr.skip(), gr.skip(), gr.skip()
        return rows, dh.documents_table(s, name), gr.update(choices=dh.document_choices(s, name))

    def do_watch(path, name):
        note, watched_now = dh.watch_folder(s, path, name), dh.watched_choices(s)
        return note, dh.watched_table(s), gr.update(choices=watched_now), gr.Timer(active=bool(watched_now))

    def do_unwatch(path):
        note, watched_now = dh.unwatch_folder(s, path), dh.watched_choices(s)
        picked = gr.update(choices=watched_now, value=None)
        return note, dh.watched_table(s), picked, gr.Timer(active=bool(watched_now))

    collection, table, chosen = top.collection, documents.table, documents.chosen
    watch_outputs = [folders.note, folders.watched, folders.pick, folders.ticker]
    folders.watch.click(do_watch, [folders.folder, collection], watch_outputs)
    folders.unwatch.click(do_unwatch, [folders.pick], watch_outputs)
    folders.ticker.tick(
        refresh_watched, [collection], [folders.watched, table, chosen], show_progress="hidden"
    )

    def on_open():
        """A page opened (or reloaded) after the server started sees the folders watched since."""
        watched_now = dh.watched_choices(s)
        return gr.update(choices=watched_now), gr.Timer(active=bool(watched_now))

    demo.load(on_open, None, [folders.pick, folders.ticker], show_progress="hidden")


def _wire_upload(
    s: Services,
    top: _CollectionRow,
    adding: _AddFiles,
    documents: _DocumentList,
    show: Callable[[str], tuple[Any, Any]],
) -> None:
    """Add (with a progress bar: files done, chunks/s, time left) and Stop, which ends the upload
    after the file in progress; each browser tab stops its own upload."""
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

    collection, table, chosen = top.collection, documents.table, documents.chosen
    stop_outputs = [adding.stop, adding.stop_note]
    adding.add.click(partial(uploading, True), None, stop_outputs, queue=False).then(
        do_upload, [adding.files, collection], adding.added, concurrency_id="documents"
    ).then(partial(uploading, False), None, stop_outputs, queue=False).then(
        show, [collection], [table, chosen]
    )
    # its own queue slot, never behind the upload it stops
    adding.stop.click(do_stop, None, adding.stop_note, concurrency_limit=None, show_progress="hidden")


def _wire_collection(
    s: Services, top: _CollectionRow, documents: _DocumentList, show: Callable[[str], tuple[Any, Any]]
) -> None:
    """Creating and dropping collections, and the chosen one's documents."""

    def do_create(name):
        message, created = dh.create_collection(s, name)
        choices = dh.collection_choices(s)
        return message, gr.update(choices=choices, value=created) if created else gr.update(choices=choices)

    def do_drop(name):
        message = dh.delete_collection(s, name)
        return message, gr.update(choices=dh.collection_choices(s), value=dh.DEFAULT_COLLECTION)

    collection, shown = top.collection, [documents.table, documents.chosen]
    top.create.click(do_create, [top.new_name], [top.note, collection])
    top.drop.click(do_drop, [collection], [top.note, collection])
    collection.change(show, [collection], shown)
    documents.refresh.click(show, [collection], shown)
    documents.delete.click(partial(dh.delete_document, s), [documents.chosen], documents.deleted).then(
        show, [collection], shown
    )


def _wire_search(s: Services, top: _CollectionRow, search: _Search, chat: _ChatRetrieval) -> None:
    for trigger in (search.go.click, search.query.submit):
        trigger(
            partial(dh.search, s),
            [search.query, top.collection, search.k, search.mode, search.multi, search.hyde],
            search.results,
            concurrency_id="documents",
        )
    for box in (chat.multi, chat.hyde):
        box.change(partial(dh.set_chat_rewriting, s), [chat.multi, chat.hyde], chat.note)
