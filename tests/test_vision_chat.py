"""Images in chat: retrieved with the answer (real GGUF, real tiny CLIP), shown in Sources."""

from __future__ import annotations

from test_vision_support import make_image

from engine import GenerationConfig, build
from engine.types import Done, Sources, TextDelta

GREEDY = GenerationConfig(temperature=0.0, max_tokens=24)


def run_turn_events(services, text: str, conversation_id=None) -> dict:
    events = {"text": "", "sources": [], "done": None}
    for event in services.chat.stream_turn(conversation_id, text, GREEDY):
        if isinstance(event, TextDelta):
            events["text"] += event.text
        elif isinstance(event, Sources):
            events["sources"] = event.hits
        elif isinstance(event, Done):
            events["done"] = event
    return events


def test_chat_shows_retrieved_images_and_names_them_in_the_prompt(vision_settings, tmp_path):
    services = build(vision_settings)
    try:
        assert not services.warnings, services.warnings
        paths = [make_image(tmp_path / f"diagram{i}.png", i) for i in range(3)]
        services.images.add_files(paths, captions={str(paths[0]): "attention heads, layer 3"})
        prompts = []
        backend = services.models.backend
        original = backend.stream_chat
        backend.stream_chat = lambda messages, *a, **kw: (
            prompts.append(messages),
            original(messages, *a, **kw),
        )[1]
        events = run_turn_events(services, "Show me the diagram of attention heads")
        images = [h for h in events["sources"] if h.kind == "image"]
        assert 1 <= len(images) <= 3
        assert {h.source for h in images} <= {p.name for p in paths}
        assert all(h.meta["path"].startswith(str(services.settings.files_dir)) for h in images)
        prompt = prompts[0][-1].content  # the user message carries the quoted references
        for h in images:
            assert h.source in prompt and 'kind="image"' in prompt
        if any(h.source == "diagram0.png" for h in images):
            assert "attention heads, layer 3" in prompt
        saved = services.conversations.messages(events["done"].conversation_id)[-1]
        assert {s["source"] for s in saved.sources if s["kind"] == "image"} == {h.source for h in images}
    finally:
        services.close()


def test_irrelevant_images_stay_out_of_the_answer(vision_settings, tmp_path):
    services = build(vision_settings.replace(clip_chat_min_score=1.01))  # nothing can clear this
    try:
        services.images.add_files([make_image(tmp_path / "a.png", 1)])
        events = run_turn_events(services, "What is the capital of France?")
        assert not [h for h in events["sources"] if h.kind == "image"]
        assert events["done"].text
    finally:
        services.close()


def test_collections_of_the_conversation_decide_which_images(vision_settings, tmp_path):
    services = build(vision_settings)
    try:
        services.images.add_files([make_image(tmp_path / "cat.png", 1)], collection="pets")
        services.images.add_files([make_image(tmp_path / "chart.png", 2)], collection="work")
        conv = services.chat.new_conversation()
        services.conversations.update(conv.id, collections=["work"])
        events = run_turn_events(services, "the chart please", conversation_id=conv.id)
        assert {h.source for h in events["sources"] if h.kind == "image"} == {"chart.png"}
    finally:
        services.close()


def test_chat_without_images_never_loads_clip(vision_settings):
    services = build(vision_settings)
    try:
        events = run_turn_events(services, "Hello there")
        assert events["done"].text
        assert not services.images.embedder.loaded
    finally:
        services.close()
