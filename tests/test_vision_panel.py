"""The Images panel's behaviour (plain functions, no browser) and the chat attachment helper."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_vision_support import bomb_png, make_image

from app import images_handlers as ih
from engine import Settings, build


def upload_like_gradio(path: Path, folder: Path) -> Path:
    """Gradio hands the handler a copy in a temp folder of its own, which the handler deletes."""
    folder.mkdir(parents=True)
    return Path(shutil.copy(path, folder / path.name))


def test_upload_search_and_delete_through_the_handlers(vservices, tmp_path):
    paths = [make_image(tmp_path / f"p{i}.png", i) for i in range(4)]
    uploads = [upload_like_gradio(p, tmp_path / "gradio" / f"u{i}") for i, p in enumerate(paths)]
    bomb = bomb_png(tmp_path / "bomb.png")
    ticks = []
    report = ih.upload(
        vservices, [*map(str, uploads), str(bomb)], "trips", progress=lambda *a: ticks.append(a)
    )
    assert "4 added" in report and "1 error" in report and "bomb.png" in report and "decompression" in report
    assert ticks[-1][:2] == (5, 5)
    assert not any(Path(u).exists() for u in uploads) and not bomb.exists()  # temp uploads are deleted
    assert "trips" in ih.collection_choices(vservices)

    items, note = ih.search_by_text(vservices, "a green circle", "trips", 3)
    assert len(items) == 3 and "3 images" in note
    for path, caption in items:
        assert Path(path).is_file() and caption.split(" · ")[0] in {p.name for p in paths}
        float(caption.split(" · ")[1])  # the score is shown

    items, note = ih.search_by_image(vservices, str(paths[2]), None, 4)
    assert items[0][1].startswith("p2.png · ") and "p2.png" in note

    gallery, choices, summary = ih.library(vservices, "trips")
    assert len(gallery) == 4 and summary.startswith("4 images")
    message = ih.delete_image(vservices, choices[0][1])
    assert "Deleted" in message and len(ih.library(vservices, "trips")[0]) == 3
    assert "Not found" in ih.delete_image(vservices, choices[0][1])


def test_labels_through_the_handler(vservices, tmp_path):
    path = make_image(tmp_path / "x.png", 1)
    scores, note = ih.classify(vservices, str(path), "cat, dog\ndiagram")
    assert set(scores) == {"cat", "dog", "diagram"} and abs(sum(scores.values()) - 1) < 1e-6
    assert "Most likely" in note
    scores, note = ih.classify(vservices, str(path), "cat")
    assert scores == {} and "at least two" in note


def test_unavailable_clip_is_explained_in_the_panel(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        status = ih.status(services)
        assert "unavailable" in status and "--clip-pretrained" in status
        items, note = ih.search_by_text(services, "cats", None, 4)
        assert items == [] and "Images unavailable" in note and "not on this computer" in note
        report = ih.upload(services, [str(make_image(tmp_path / "a.png", 1))], "library")
        assert "1 error" in report and "local-dir:" in report
    finally:
        services.close()


def test_bad_example_image_gets_a_message_not_a_traceback(vservices, tmp_path):
    (tmp_path / "fake.png").write_text("hello")
    items, note = ih.search_by_image(vservices, str(tmp_path / "fake.png"), None, 4)
    assert items == [] and "Could not read image" in note and "fake.png" in note


def test_describe_attachment_finds_images_and_passages(vservices, tmp_path):
    paths = [make_image(tmp_path / f"shot{i}.png", i) for i in range(3)]
    vservices.images.add_files(paths)
    doc = tmp_path / "notes.md"
    doc.write_text(
        "# Attention\n\nEach attention head looks at other tokens.\n\n# Gardens\n\nTomatoes need sun.\n"
    )
    results = vservices.documents.ingest_paths([doc])
    assert results[0].status == "added", results
    text = ih.describe_attachment(vservices, paths[1])
    assert text.split("**Most similar images**\n")[1].startswith("1. `shot1.png`")  # ranked first
    assert "**Closest passages (CLIP space)**" in text and "notes.md" in text
    assert "text-only" in text and "mmproj" in text  # no vision GGUF is loaded
    found = vservices.images.related_to_image(paths[1], k=2)
    assert found["images"][0].source == "shot1.png"
    assert {h.source for h in found["chunks"]} == {"notes.md"}
    # removing the document drops its passages from the CLIP text index as well
    vservices.documents.delete(results[0].id)
    assert vservices.images.related_to_image(paths[1], k=2)["chunks"] == []


def test_panel_builds_without_loading_clip(vservices):
    import gradio as gr

    from app.images_panel import build_images_panel

    with gr.Blocks() as demo:
        with gr.Tab("Images"):
            build_images_panel(vservices)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {"images-status", "images-upload", "images-add", "images-query", "images-results"} <= ids
    assert not vservices.images.embedder.loaded  # building the page never loads CLIP
