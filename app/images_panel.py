"""The Images tab: layout and wiring only; behaviour lives in images_handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from engine.library import IMAGE_SUFFIXES

from . import images_handlers as ih

if TYPE_CHECKING:
    from engine.factory import Services

IMAGE_TYPES = sorted(IMAGE_SUFFIXES)


@dataclass
class _Scope:
    status: gr.Markdown
    collection: gr.Dropdown
    k: gr.Slider
    everywhere: gr.Checkbox


@dataclass
class _AddImages:
    files: gr.File
    add: gr.Button
    added: gr.Markdown


@dataclass
class _Searches:
    query: gr.Textbox
    search: gr.Button
    example: gr.File
    like: gr.Button
    labels: gr.Textbox
    label_btn: gr.Button
    label_out: gr.Label
    label_note: gr.Markdown
    results: gr.Gallery
    results_note: gr.Markdown


@dataclass
class _Contents:
    gallery: gr.Gallery
    note: gr.Markdown
    chosen: gr.Dropdown
    refresh: gr.Button
    delete: gr.Button
    deleted: gr.Markdown

    @property
    def shown(self) -> list[gr.components.Component]:
        """What ``show_library`` fills."""
        return [self.gallery, self.chosen, self.note]


def build_images_panel(services: Services) -> None:
    """Called inside ``with gr.Tab("Images"):``. CLIP is checked when the page loads, not at start-up."""
    s = services
    scope = _scope(s)
    adding = _add_images()
    searches = _searches()
    contents = _contents()
    show_library = _library_view(s)
    _wire_add(s, scope, adding, contents, show_library)
    _wire_searches(s, scope, searches)
    _wire_contents(s, scope, contents, show_library)


def _scope(s: Services) -> _Scope:
    status = gr.Markdown(partial(ih.status, s), elem_id="images-status")
    with gr.Row():
        collection = gr.Dropdown(
            choices=ih.collection_choices(s),
            value=ih.DEFAULT_COLLECTION,
            allow_custom_value=True,
            label="Collection",
            elem_id="images-collection",
            info="Type a new name to start a collection.",
            scale=3,
        )
        k = gr.Slider(1, 48, value=8, step=1, label="Results", scale=2)
        everywhere = gr.Checkbox(label="Search every collection", value=False, scale=1)
    return _Scope(status, collection, k, everywhere)


def _add_images() -> _AddImages:
    with gr.Accordion("Add images", open=True):
        files = gr.File(
            file_count="multiple",
            file_types=IMAGE_TYPES,
            type="filepath",
            label="PNG, JPEG, WebP, GIF (first frame) or BMP",
            elem_id="images-upload",
        )
        add = gr.Button("Add to collection", variant="primary", elem_id="images-add")
        added = gr.Markdown(elem_id="images-added")
    return _AddImages(files, add, added)


def _searches() -> _Searches:
    """Search by text, by an example image, or label the example; results on the right."""
    with gr.Row():
        query = gr.Textbox(
            placeholder="Describe the image: “a diagram of attention heads”",
            show_label=False,
            scale=4,
            elem_id="images-query",
        )
        search = gr.Button("Search by text", scale=1, elem_id="images-search")
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            example = gr.File(
                file_count="single",
                file_types=IMAGE_TYPES,
                type="filepath",
                label="Example image (search by example, or label it)",
                elem_id="images-example",
            )
            like = gr.Button("Find similar images", elem_id="images-like")
            labels = gr.Textbox(
                label="Labels (one per line or comma-separated)",
                lines=3,
                placeholder="cat, dog, diagram, screenshot",
                elem_id="images-labels",
            )
            label_btn = gr.Button("Label the example image", elem_id="images-classify")
            label_out = gr.Label(label="Zero-shot labels", num_top_classes=5)
            label_note = gr.Markdown()
        with gr.Column(scale=3):
            results = gr.Gallery(
                label="Results", columns=4, height=480, object_fit="contain", elem_id="images-results"
            )
            results_note = gr.Markdown(elem_id="images-results-note")
    return _Searches(
        query, search, example, like, labels, label_btn, label_out, label_note, results, results_note
    )


def _contents() -> _Contents:
    with gr.Accordion("Collection contents", open=False):
        gallery = gr.Gallery(label="Images", columns=6, height=320, object_fit="cover")
        note = gr.Markdown()
        with gr.Row():
            chosen = gr.Dropdown(choices=[], label="Image", scale=3)
            refresh = gr.Button("Refresh", size="sm", scale=1)
            delete = gr.Button("Delete image", variant="stop", size="sm", scale=1)
        deleted = gr.Markdown()
    return _Contents(gallery, note, chosen, refresh, delete, deleted)


def _library_view(s: Services) -> Callable[[str], tuple[Any, Any, Any]]:
    """The collection's images, image choices and a note, shown after every change to them."""

    def show_library(name):
        items, choices, note = ih.library(s, name)
        return items, gr.update(choices=choices, value=None), note

    return show_library


def _wire_add(
    s: Services,
    scope: _Scope,
    adding: _AddImages,
    contents: _Contents,
    show_library: Callable[[str], tuple[Any, Any, Any]],
) -> None:
    def do_upload(paths, name, progress=gr.Progress()):
        def tick(done, total, file_name):
            progress(done / max(total, 1), desc=f"{done}/{total} {file_name}")

        return ih.upload(s, paths, name, progress=tick), gr.update(choices=ih.collection_choices(s))

    collection = scope.collection
    adding.add.click(
        do_upload, [adding.files, collection], [adding.added, collection], concurrency_id="images"
    ).then(partial(ih.status, s), None, scope.status).then(show_library, [collection], contents.shown)


def _wire_searches(s: Services, scope: _Scope, searches: _Searches) -> None:
    def by_text(text, name, count, every):
        return ih.search_by_text(s, text, None if every else name, count)

    def by_example(image, name, count, every):
        return ih.search_by_image(s, image, None if every else name, count)

    found = [searches.results, searches.results_note]
    for trigger in (searches.search.click, searches.query.submit):
        trigger(
            by_text,
            [searches.query, scope.collection, scope.k, scope.everywhere],
            found,
            concurrency_id="images",
        )
    searches.like.click(
        by_example,
        [searches.example, scope.collection, scope.k, scope.everywhere],
        found,
        concurrency_id="images",
    )
    searches.label_btn.click(
        partial(ih.classify, s),
        [searches.example, searches.labels],
        [searches.label_out, searches.label_note],
        concurrency_id="images",
    )


def _wire_contents(
    s: Services, scope: _Scope, contents: _Contents, show_library: Callable[[str], tuple[Any, Any, Any]]
) -> None:
    collection = scope.collection
    contents.refresh.click(show_library, [collection], contents.shown)
    collection.change(show_library, [collection], contents.shown)
    contents.delete.click(partial(ih.delete_image, s), [contents.chosen], contents.deleted).then(
        show_library, [collection], contents.shown
    )
