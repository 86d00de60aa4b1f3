"""Shared fixtures: real parts (the bundled GGUF, SQLite and Chroma in temp dirs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from pathlib import Path  # noqa: E402

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


# Logging is process-wide: a test that runs the CLI in-process (cli.main calls engine.logs.log_to)
# or a library that configures logging must not change what later tests see or log.


@pytest.fixture(autouse=True)
def _restore_logging():
    with restored_logging():
        yield


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put every logger's level, handlers, propagation and enabled state back at the end."""
    from engine.logs import stop_logging

    manager = logging.Logger.manager
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers), manager.disable)
    loggers = {name: lg for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    saved = {name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled) for name, lg in loggers.items()}
    try:
        yield
    finally:
        stop_logging()
        level, handlers, disable = root_state
        root.setLevel(level)
        logging.disable(disable)
        for handler in root.handlers[:]:  # pytest swaps its own capture handlers per test phase
            if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
                root.removeHandler(handler)
        for name, lg in list(manager.loggerDict.items()):
            if not isinstance(lg, logging.Logger):
                continue
            if name not in saved:
                lg.disabled = False  # a logger created meanwhile starts enabled, like any new one
                continue
            level, handlers, lg.propagate, lg.disabled = saved[name]
            if lg.level != level:
                lg.setLevel(level)
            if lg.handlers != handlers:
                lg.handlers[:] = handlers


def run_turn(
    services, text: str, config: GenerationConfig = GREEDY, conversation_id=None, mode="new", images=()
):
    """Run one turn to the end; return (Done event, streamed text)."""
    streamed, done = [], None
    for event in services.chat.stream_turn(conversation_id, text, config, mode=mode, images=images):
        if isinstance(event, TextDelta):
            streamed.append(event.text)
        elif isinstance(event, Done):
            done = event
    assert done is not None
    return done, "".join(streamed)


# The tiny CLIP of the vision tests (tests/test_vision_support.py builds it), shared by every test.


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    from test_vision_support import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def vision_settings(tmp_path, tiny_clip_dir) -> Settings:
    # every image clears the chat threshold: random weights give arbitrary scores
    return Settings(
        data_dir=tmp_path / "data",
        n_ctx=2048,
        clip_model=f"local-dir:{tiny_clip_dir}",
        clip_chat_min_score=-1.0,
        clip_batch_size=4,
    )


@pytest.fixture
def vservices(vision_settings):
    services = build(vision_settings, load_model=False)
    yield services
    services.close()


# The page in Debian's Chromium (tests/page_support.py): one browser per module, a fresh page
# (its own browser context) per test. A module overrides `server` (and `page_height`) for its own.


@pytest.fixture(scope="module")
def browser():
    from page_support import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page served over the bundled model, memory on: (services, base URL)."""
    from page_support import serve_page

    with serve_page(tmp_path_factory.mktemp("page")) as served:
        yield served


@pytest.fixture
def page_height() -> int:
    return 1000


@pytest.fixture
def page(browser, server, page_height):
    from page_support import open_page

    page = open_page(browser, server[1], height=page_height)
    yield page
    page.close()
