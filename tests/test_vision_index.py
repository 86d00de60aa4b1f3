"""The image index with a real (tiny) CLIP, real Chroma and real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_vision_support import make_image, save_tiny_clip

from engine import build
from engine.errors import ConfigError, NotFoundError, VisionError
from engine.vectors import collection_name


def _add(services, folder: Path, seeds, collection="library", fmt="PNG", ext=".png"):
    paths = [make_image(folder / f"pic{s}{ext}", s, fmt) for s in seeds]
    return paths, services.images.add_files(paths, collection=collection)


def test_images_round_trip_and_exact_duplicate_ranks_first(vservices, tmp_path):
    seen = []
    paths = [
        make_image(tmp_path / f"in/pic{s}.{e}", s, f)
        for s, (e, f) in enumerate(
            [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP"), ("bmp", "BMP"), ("gif", "GIF")] * 2
        )
    ]
    results = vservices.images.add_files(paths, progress=lambda d, t, n: seen.append((d, t, n)))
    assert [r.status for r in results] == ["added"] * 10, results
    assert [d for d, _, _ in seen] == list(range(1, 11)) and seen[-1][1] == 10
    stored = vservices.images.list("library")
    assert len(stored) == 10
    data_dir = vservices.settings.data_dir.resolve()
    for image in stored:
        assert image.path.is_file() and data_dir in image.path.resolve().parents  # copied inside the data dir
        assert image.path.name.startswith(image.id)  # generated name, not the user's
    for probe in (paths[3], paths[6]):  # a BMP and a JPEG, searched by an identical file
        hits = vservices.images.search_image(probe, k=5)
        assert hits[0].source == probe.name and hits[0].score > 0.999
        assert hits[0].kind == "image" and Path(hits[0].meta["path"]).is_file()
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_text_search_shape_and_order(vservices, tmp_path):
    _add(vservices, tmp_path, range(6))
    hits = vservices.images.search_text("a red square on a blue background", k=4)
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert h.kind == "image" and h.id and h.source.endswith(".png")
        assert h.meta["collection"] == "library" and Path(h.meta["path"]).is_file()
        assert h.source in h.text and -1.0 <= h.score <= 1.0
    # the same ranking comes from the raw vectors: score is the cosine similarity
    embedder = vservices.images.embedder
    query = embedder.embed_texts(["a red square on a blue background"])[0]
    by_hand = {}
    for image in vservices.images.list():
        vec = vservices.images._embed_file(image.path)
        by_hand[image.file_name] = sum(a * b for a, b in zip(query, vec))
    expected = sorted(by_hand, key=by_hand.get, reverse=True)[:4]
    assert [h.source for h in hits] == expected
    with pytest.raises(ConfigError):
        vservices.images.search_text("   ")


def test_collections_filter_and_dedupe(vservices, tmp_path):
    _add(vservices, tmp_path / "a", [1, 2], collection="cats")
    _add(vservices, tmp_path / "b", [3], collection="dogs")
    again = vservices.images.add_files([tmp_path / "a/pic1.png"], collection="cats")
    assert again[0].status == "unchanged"
    copy = tmp_path / "copy-of-pic3.png"
    copy.write_bytes((tmp_path / "b/pic3.png").read_bytes())
    twins = vservices.images.add_files([copy, tmp_path / "b/pic3.png"], collection="birds")  # one batch
    assert [r.status for r in twins] == ["added", "unchanged"] and twins[1].id == twins[0].id
    vservices.images.delete(twins[0].id)
    twin = vservices.images.add_files([tmp_path / "a/pic1.png"], collection="dogs")  # other collection: new
    assert twin[0].status == "added"
    assert sorted(vservices.images.collections()) == ["cats", "dogs"]
    hits = vservices.images.search_image(tmp_path / "b/pic3.png", k=10, collection="cats")
    assert {h.meta["collection"] for h in hits} == {"cats"} and len(hits) == 2
    assert len(vservices.images.search_image(tmp_path / "b/pic3.png", k=10)) == 4


def test_changed_file_is_replaced(vservices, tmp_path):
    path = make_image(tmp_path / "photo.png", 1)
    first = vservices.images.add_files([path])[0]
    make_image(path, 2)  # same name, new picture
    second = vservices.images.add_files([path])[0]
    assert second.status == "replaced" and second.id != first.id
    assert [i.id for i in vservices.images.list()] == [second.id]
    assert vservices.images.search_image(path, k=3)[0].id == second.id


def test_delete_removes_row_file_and_vector(vservices, tmp_path):
    paths, results = _add(vservices, tmp_path, [1, 2, 3])
    victim = vservices.images.list()[0]
    index = vservices.vectors.collection(collection_name("images", vservices.images.embedder.config.key))
    assert victim.id in index.ids()
    vservices.images.delete(victim.id)
    assert victim.id not in {i.id for i in vservices.images.list()}
    assert not victim.path.exists()
    assert victim.id not in index.ids()
    assert victim.id not in {h.id for h in vservices.images.search_image(paths[0], k=10)}
    with pytest.raises(NotFoundError):
        vservices.images.delete(victim.id)


def test_captions_reach_the_hit_text(vservices, tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Description", "attention heads of layer 3")
    embedded = make_image(tmp_path / "heads.png", 5, "PNG", pnginfo=info)
    plain = make_image(tmp_path / "chart.png", 6)
    vservices.images.add_files([embedded, plain], captions={str(plain): "alt: sales by quarter"})
    texts = {h.source: h.text for h in vservices.images.search_text("anything", k=5)}
    assert "heads.png" in texts["heads.png"] and "attention heads of layer 3" in texts["heads.png"]
    assert "alt: sales by quarter" in texts["chart.png"]


def test_zero_shot_labels_are_probabilities(vservices, tmp_path):
    path = make_image(tmp_path / "x.png", 4)
    ranked = vservices.images.classify(path, ["cat", "dog", "diagram", "cat"])
    assert sorted(name for name, _ in ranked) == ["cat", "diagram", "dog"]  # duplicates dropped
    assert abs(sum(p for _, p in ranked) - 1.0) < 1e-6
    assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)
    with pytest.raises(ConfigError):
        vservices.images.classify(path, ["only one"])


def test_model_change_reindexes_from_stored_copies(vision_settings, tmp_path):
    services = build(vision_settings, load_model=False)
    paths, _ = _add(services, tmp_path, [1, 2, 3])
    services.close()
    other = save_tiny_clip(tmp_path / "other-clip", seed=1)
    services = build(vision_settings.replace(clip_model=f"local-dir:{other}"), load_model=False)
    try:
        hits = services.images.search_image(paths[1], k=3)  # first use re-embeds the stored copies
        assert len(hits) == 3 and hits[0].source == "pic2.png" and hits[0].score > 0.999
    finally:
        services.close()


def test_missing_weights_leave_the_app_working(tmp_path):
    from engine import Settings

    settings = Settings(data_dir=tmp_path / "data", n_ctx=2048)  # default ViT-B-32 / laion2b, not on disk
    services = build(settings)
    try:
        ok, message = services.images.available()
        assert not ok
        assert "ViT-B-32" in message and "--clip-pretrained" in message and "local-dir:" in message
        with pytest.raises(VisionError, match="not on this computer"):
            services.images.search_text("a cat")
        path = make_image(tmp_path / "a.png", 1)
        result = services.images.add_files([path])[0]
        assert result.status == "error" and "--clip-model" in result.message
        assert services.images.list() == []
        from test_vision_chat import run_turn_events  # chat still works, without images

        events = run_turn_events(services, "Hello")
        assert events["done"].text
    finally:
        services.close()


@pytest.mark.parametrize(
    ("model", "pretrained", "expected"),
    [
        ("local-dir:/no/such/folder", "", "does not exist"),
        ("ViT-B-32", "/no/such/weights.safetensors", "neither a checkpoint file"),
        ("No-Such-Arch", "x", "Unknown CLIP architecture"),
        ("hf-hub:someone/some-clip", "", "not on this computer"),
    ],
)
def test_each_missing_piece_is_named(tmp_path, model, pretrained, expected):
    from engine.vision import ClipConfig, ClipEmbedder

    with pytest.raises(VisionError, match=expected) as info:
        ClipEmbedder(ClipConfig(model=model, pretrained=pretrained)).plan()
    assert "--clip-model local-dir:" in str(info.value)  # and how to provide the weights


def test_local_dir_without_weights_is_refused(tmp_path, tiny_clip_dir):
    from engine.vision import ClipConfig, ClipEmbedder

    folder = tmp_path / "config-only"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((tiny_clip_dir / "open_clip_config.json").read_text())
    with pytest.raises(VisionError, match="no weights file"):  # open_clip alone would use random weights
        ClipEmbedder(ClipConfig(model=f"local-dir:{folder}")).plan()


def test_hf_hub_model_loads_from_the_local_cache(tmp_path, tiny_clip_dir, monkeypatch):
    from huggingface_hub import constants

    from engine.vision import ClipConfig, ClipEmbedder

    snapshot = tmp_path / "hub/models--acme--tiny-clip/snapshots/abc123"
    snapshot.mkdir(parents=True)
    for name in ("open_clip_config.json", "open_clip_pytorch_model.bin"):
        (snapshot / name).write_bytes((tiny_clip_dir / name).read_bytes())
    (tmp_path / "hub/models--acme--tiny-clip/refs").mkdir()
    (tmp_path / "hub/models--acme--tiny-clip/refs/main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    embedder = ClipEmbedder(ClipConfig(model="hf-hub:acme/tiny-clip"))
    assert "cache of acme/tiny-clip" in embedder.plan().source
    assert len(embedder.embed_texts(["hello"])[0]) == 32


def test_an_unreachable_hub_is_probed_once_not_on_every_chat_turn(monkeypatch):
    from engine.vision import ClipConfig, ClipEmbedder, hub

    probes = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout_s=3.0: probes.append(1) or False)
    embedder = ClipEmbedder(ClipConfig())  # default weights, not cached here
    for _ in range(3):
        with pytest.raises(VisionError, match="cannot be reached"):
            embedder.embed_texts(["a cat"])
    assert probes == [1]


def test_corrupt_weights_are_reported_not_raised_at_start(tmp_path, tiny_clip_dir):
    folder = tmp_path / "broken-clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((tiny_clip_dir / "open_clip_config.json").read_text())
    (folder / "open_clip_pytorch_model.bin").write_bytes(b"not a checkpoint" * 100)
    from engine import Settings

    services = build(Settings(data_dir=tmp_path / "data", clip_model=f"local-dir:{folder}"), load_model=False)
    try:
        assert services.images.available()[0]  # the files are there; nothing tried to load them yet
        with pytest.raises(VisionError, match="Could not load CLIP"):
            services.images.search_text("a cat")
        ok, message = services.images.available()
        assert not ok and "Could not load CLIP" in message and str(folder) in message
    finally:
        services.close()
