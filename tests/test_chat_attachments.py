"""An image attached to a chat message (tiny real CLIP, real GGUF)."""

from __future__ import annotations

from test_vision_support import make_image

from app import handlers as h
from app.controls import control_values
from engine import GenerationConfig, build


def _final(generator):
    last = None
    for last in generator:
        pass
    return last


def test_attached_image_shows_similar_images_labels_then_answers(vision_settings, tmp_path):
    services = build(vision_settings)
    try:
        stored = make_image(tmp_path / "in" / "harbour.png", seed=3)
        other = make_image(tmp_path / "in" / "forest.png", seed=9)
        assert [r.status for r in services.images.add_files([stored, other])] == ["added", "added"]
        values = control_values(GenerationConfig(temperature=0.0, max_tokens=8))

        history, cid, box, _ = _final(
            h.respond_with_attachment(
                services, None, "What is this?", [], False, "", str(stored), "boat, tree", [], *values
            )
        )
        about = next(m for m in history if m.get("metadata", {}).get("title", "").startswith("🖼"))
        assert about["content"].index("harbour.png") < about["content"].index("forest.png")  # duplicate first
        assert (
            "**Labels**: " in about["content"] and "boat" in about["content"] and "tree" in about["content"]
        )
        assert history[0] == {"role": "user", "content": {"path": str(stored)}}
        titles = [m.get("metadata", {}).get("title", "") for m in history]
        assert any(t.startswith("📊") for t in titles)  # and the model answered the text
        assert [m.role for m in services.conversations.messages(cid)] == ["user", "assistant"]

        only_image, cid2, _, _ = _final(
            h.respond_with_attachment(services, cid, "", [], False, "", str(other), "", [], *values)
        )
        assert cid2 == cid and "forest.png" in only_image[-1]["content"]
        assert len(services.conversations.messages(cid)) == 2  # an image alone starts no model turn
    finally:
        services.close()
