"""Shared fixtures: real parts (the bundled GGUF, SQLite and Chroma in temp dirs)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from engine import GenerationConfig, Settings, build  # noqa: E402
from engine.types import Done, TextDelta  # noqa: E402


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", n_ctx=2048)


@pytest.fixture
def services(settings):
    s = build(settings)
    assert not s.warnings, s.warnings
    yield s
    s.close()


GREEDY = GenerationConfig(temperature=0.0, max_tokens=40)


def run_turn(services, text: str, config: GenerationConfig = GREEDY, conversation_id=None, mode="new"):
    """Run one turn to the end; return (Done event, streamed text)."""
    streamed, done = [], None
    for event in services.chat.stream_turn(conversation_id, text, config, mode=mode):
        if isinstance(event, TextDelta):
            streamed.append(event.text)
        elif isinstance(event, Done):
            done = event
    assert done is not None
    return done, "".join(streamed)
