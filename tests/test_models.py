"""Loading models: the bundled one, bad files, and keeping the previous model on failure."""

from __future__ import annotations

import shutil

import pytest
from conftest import GREEDY, run_turn

from app import model_handlers as mh
from engine import GenerationError, ModelError, Settings, build
from engine.backends.llama_cpp import bundled_model_path


def test_bundled_model_facts(services):
    info = services.models.info
    assert info.quantization == "Q4_1"
    assert 100e6 < info.n_params < 200e6
    assert info.n_ctx == 2048 and info.n_ctx_train >= 2048
    assert info.chat_template_source == "gguf"
    facts = mh.model_facts(services)
    assert "Q4_1" in facts and "chat template | gguf" in facts


def _bad_files(tmp_path):
    real = bundled_model_path().read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(real[: len(real) // 3])
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model " * 200)
    return {
        "missing": (tmp_path / "nope.gguf", "not found"),
        "empty": (empty, "too small"),
        "not gguf": (text, "not a GGUF"),
        "truncated": (truncated, "could not load"),
    }


@pytest.mark.parametrize("kind", ["missing", "empty", "not gguf", "truncated"])
def test_bad_model_file_gives_clear_error_and_keeps_previous_model(services, tmp_path, kind):
    path, words = _bad_files(tmp_path)[kind]
    before = services.models.info
    with pytest.raises(ModelError) as info:
        services.models.load(model=str(path))
    assert words.lower() in str(info.value).lower()
    assert services.models.info is before
    done, _ = run_turn(services, "Still there?", GREEDY.replace(max_tokens=5))
    assert done.usage.completion_tokens == 5


def test_app_starts_without_a_model_and_says_why(tmp_path):
    services = build(Settings(data_dir=tmp_path / "d", model=str(tmp_path / "missing.gguf")))
    try:
        assert services.models.info is None
        assert "not found" in services.warnings[0]
        with pytest.raises(ModelError, match="No model is loaded"):
            run_turn(services, "hello")
        assert services.conversations.list() == []  # nothing half-written
        assert "No model loaded" in mh.model_facts(services)
    finally:
        services.close()


def test_model_panel_loads_another_file_and_reports_failures(services, tmp_path):
    copy = services.settings.models_dir / "copy.gguf"  # the page loads files from the models folder
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundled_model_path(), copy)
    facts, status = mh.load_model(
        services, str(copy), None, 1024, None, None, 256, False, "f16", "f16", True, False, ""
    )
    assert status.startswith("✅") and services.models.info.n_ctx == 1024
    assert services.models.info.path == str(copy)
    facts, status = mh.load_model(
        services,
        str(services.settings.models_dir / "gone.gguf"),
        None,
        1024,
        None,
        None,
        256,
        False,
        "f16",
        "f16",
        True,
        False,
        "",
    )
    assert "not found" in status and "Still using" in status
    facts, status = mh.load_model(
        services, str(copy), None, "abc", None, None, 256, False, "f16", "f16", True, False, ""
    )
    assert "whole number" in status
    for bad_threads in ("-3", "inf", "2.5"):
        _, status = mh.load_model(
            services, str(copy), None, 1024, "", bad_threads, 256, False, "f16", "f16", True, False, ""
        )
        assert status.startswith("⚠️") and "Still using" in status
    _, status = mh.load_model(
        services, str(copy), None, 1024, " ", "", 256, False, "f16", "f16", True, False, ""
    )
    assert status.startswith("✅")  # empty boxes mean auto


def test_chat_template_override_is_used(services):
    template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    info = services.models.load(chat_template=template)
    assert info.chat_template_source == "override"
    done, _ = run_turn(services, "Hi", GREEDY.replace(max_tokens=3))
    assert done.usage.completion_tokens > 0


def _png(tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (32, 32), "red").save(path)
    return path


def test_text_only_model_refuses_images_before_saving_anything(services, tmp_path):
    assert services.models.backend.supports_images is False
    with pytest.raises(GenerationError, match="cannot see images"):
        next(services.chat.stream_turn(None, "What is this?", GREEDY, images=[_png(tmp_path)]))
    assert services.conversations.list() == []
    assert "no (text only)" in mh.model_facts(services)


def test_vision_projector_problems_are_clear_and_keep_the_app_up(services, tmp_path):
    before = services.models.info
    with pytest.raises(ModelError, match="not found"):
        services.models.load(mmproj=str(tmp_path / "missing-mmproj.gguf"))
    assert services.models.info is before
    # a GGUF that is not a projector for this model: loads, then fails clearly when an image is sent
    services.models.load(mmproj=str(bundled_model_path()))
    assert services.models.backend.supports_images
    with pytest.raises(GenerationError, match="projector"):
        run_turn(services, "What is this?", GREEDY, images=[_png(tmp_path)])
    [conv] = services.conversations.list()
    assert [m.content for m in services.conversations.messages(conv.id)] == ["What is this?"]
    done, _ = run_turn(services, "Hello", GREEDY.replace(max_tokens=3))  # text still works
    assert done.usage.completion_tokens == 3
