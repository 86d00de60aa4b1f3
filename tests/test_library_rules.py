"""Rules that documents and images share live once, in engine/library.py: both services, the
page and the command line must agree on them."""

from __future__ import annotations

import pytest
from test_vision_support import make_image

from engine.errors import ConfigError
from engine.library import DEFAULT_COLLECTION, IMAGE_SUFFIXES

BAD_NAMES = ["", "   ", "a/b", "x" * 65, "<b>bold</b>", "tab\there", "semi;colon"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_documents_and_images_refuse_the_same_collection_names(vservices, tmp_path, name):
    image = make_image(tmp_path / "one.png", 1)
    with pytest.raises(ConfigError) as documents_error:
        vservices.documents.create_collection(name)
    with pytest.raises(ConfigError) as images_error:
        vservices.images.add_files([image], collection=name)
    assert str(documents_error.value) == str(images_error.value)
    assert name.strip() not in vservices.images.collections() or not name.strip()


def test_documents_and_images_accept_the_same_names_and_default(vservices, tmp_path):
    image = make_image(tmp_path / "one.png", 1)
    assert vservices.documents.create_collection("  Field notes 2.0 ") == "Field notes 2.0"
    [added] = vservices.images.add_files([image], collection="  Field notes 2.0 ")
    assert added.status == "added"
    assert "Field notes 2.0" in vservices.images.collections()
    [default] = vservices.images.add_files([make_image(tmp_path / "two.png", 2)])
    assert default.status == "added"
    assert DEFAULT_COLLECTION in vservices.images.collections()
    assert DEFAULT_COLLECTION in vservices.documents.collections()


def test_both_panels_offer_the_default_collection_first_when_empty(vservices):
    from app import documents_handlers, images_handlers

    assert vservices.images.collections() == []
    assert images_handlers.collection_choices(vservices) == [DEFAULT_COLLECTION]
    assert documents_handlers.collection_choices(vservices)[0] == DEFAULT_COLLECTION


def test_every_image_file_is_offered_and_routed_to_the_image_index(tmp_path):
    from app.documents_handlers import UPLOAD_TYPES
    from app.images_panel import IMAGE_TYPES
    from engine.rag.files import expand, split_images

    paths = []
    for suffix in sorted(IMAGE_SUFFIXES):
        path = tmp_path / f"picture{suffix.upper()}"
        path.write_bytes(b"not read by the routing")
        paths.append(path)
    (tmp_path / "notes.txt").write_text("text")
    images, rest = split_images(expand([tmp_path]))
    assert sorted(f.path.name for f in images) == sorted(p.name for p in paths)
    assert [f.path.name for f in rest] == ["notes.txt"]
    assert set(IMAGE_TYPES) == IMAGE_SUFFIXES and IMAGE_SUFFIXES <= set(UPLOAD_TYPES)


def test_the_command_line_adds_to_the_default_collection():
    from cli import global_parser

    assert global_parser().parse_args(["ingest", "x"]).collection == DEFAULT_COLLECTION


def test_every_panel_shows_engine_errors_as_inert_text(vservices, tmp_path):
    from app import documents_handlers, images_handlers
    from app.handlers import friendly

    name = "<img src=https://evil.example/x.png>"
    documents_message, created = documents_handlers.create_collection(vservices, name)
    images_message = images_handlers.upload(vservices, [make_image(tmp_path / "a.png", 1)], name)
    assert created is None
    for message in (documents_message, images_message, friendly(ConfigError(f"bad {name}"))):
        assert message.startswith("⚠️ **") and "<img" not in message and "&lt;img" in message
