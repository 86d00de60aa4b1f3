"""The Images tab: layout and wiring only; behaviour lives in images_handlers."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from . import images_handlers as ih

if TYPE_CHECKING:
    from engine.factory import Services

IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"]


def build_images_panel(services: Services) -> None:
    """Called inside ``with gr.Tab("Images"):``. CLIP is checked when the page loads, not at start-up."""
    s = services
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
    with gr.Accordion("Collection contents", open=False):
        contents = gr.Gallery(label="Images", columns=6, height=320, object_fit="cover")
        contents_note = gr.Markdown()
        with gr.Row():
            chosen = gr.Dropdown(choices=[], label="Image", scale=3)
            refresh = gr.Button("Refresh", size="sm", scale=1)
            delete = gr.Button("Delete image", variant="stop", size="sm", scale=1)
        deleted = gr.Markdown()

    def show_library(name):
        items, choices, note = ih.library(s, name)
        return items, gr.update(choices=choices, value=None), note

    def do_upload(paths, name, progress=gr.Progress()):
        def tick(done, total, file_name):
            progress(done / max(total, 1), desc=f"{done}/{total} {file_name}")

        return ih.upload(s, paths, name, progress=tick), gr.update(choices=ih.collection_choices(s))

    add.click(do_upload, [files, collection], [added, collection], concurrency_id="images").then(
        partial(ih.status, s), None, status
    ).then(show_library, [collection], [contents, chosen, contents_note])

    def by_text(text, name, count, every):
        return ih.search_by_text(s, text, None if every else name, count)

    def by_example(image, name, count, every):
        return ih.search_by_image(s, image, None if every else name, count)

    for trigger in (search.click, query.submit):
        trigger(by_text, [query, collection, k, everywhere], [results, results_note], concurrency_id="images")
    like.click(
        by_example, [example, collection, k, everywhere], [results, results_note], concurrency_id="images"
    )
    label_btn.click(
        partial(ih.classify, s), [example, labels], [label_out, label_note], concurrency_id="images"
    )
    refresh.click(show_library, [collection], [contents, chosen, contents_note])
    collection.change(show_library, [collection], [contents, chosen, contents_note])
    delete.click(partial(ih.delete_image, s), [chosen], deleted).then(
        show_library, [collection], [contents, chosen, contents_note]
    )
