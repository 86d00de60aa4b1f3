"""Every backend, real or double, implements the whole Backend protocol with its signatures,
so the engine can call any protocol member without getattr/hasattr fallbacks."""

from __future__ import annotations

import inspect
import typing

import pytest
from api_support import RecordingBackend as ApiRecordingBackend
from backend_doubles import DelegatingBackend, ScriptedBackend
from remote_servers import models_route, tiny_server
from test_memory_context import RecordingBackend as MemoryRecordingBackend
from test_memory_tools import ToolCallBackend

from engine.backends.base import Backend
from engine.backends.llama_cpp import LlamaCppBackend
from engine.backends.remote import RemoteBackend
from engine.config import GenerationConfig, Settings
from engine.errors import GenerationError
from engine.types import Message

MEMBERS = sorted(typing._get_protocol_attrs(Backend))  # private, but the one list of a protocol's members
METHODS = [name for name in MEMBERS if callable(getattr(Backend, name, None))]
CLASSES = [
    LlamaCppBackend,
    RemoteBackend,
    DelegatingBackend,
    ScriptedBackend,
    ToolCallBackend,
    MemoryRecordingBackend,
    ApiRecordingBackend,
]


def _accepts(param: inspect.Parameter, signature: inspect.Signature) -> bool:
    """``signature`` takes ``param`` the way the protocol passes it, with the same default."""
    own = signature.parameters.get(param.name)
    if own is not None:
        return own.kind == param.kind and own.default == param.default
    kinds = {p.kind for p in signature.parameters.values()}
    if param.kind == inspect.Parameter.KEYWORD_ONLY:
        return inspect.Parameter.VAR_KEYWORD in kinds
    return False


def test_the_protocol_is_what_the_engine_uses():
    assert {"info", "supports_images", "supports_completion", "stream_chat", "stream_completion"} <= set(
        MEMBERS
    )


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_backend_has_every_method_with_the_protocol_signature(cls):
    for name in METHODS:
        method = getattr(cls, name, None)
        assert callable(method), f"{cls.__name__} lacks {name}()"
        wanted, own = inspect.signature(getattr(Backend, name)), inspect.signature(method)
        missing = [p.name for p in wanted.parameters.values() if not _accepts(p, own)]
        assert not missing, f"{cls.__name__}.{name} does not take {missing} as the protocol does"


def test_instances_carry_the_data_members(settings: Settings):
    real = LlamaCppBackend(settings)
    try:
        doubles = [
            real,
            DelegatingBackend(real),
            MemoryRecordingBackend(real),
            ApiRecordingBackend(real),
            ScriptedBackend(["hello"]),
            ToolCallBackend([]),
        ]
        for backend in doubles:
            assert isinstance(backend, Backend), type(backend).__name__
            assert backend.info.n_ctx > 0 and isinstance(backend.supports_images, bool)
            assert isinstance(backend.supports_completion, bool)
        assert DelegatingBackend(real).supports_completion and not DelegatingBackend(real).supports_images
    finally:
        real.close()


def test_a_delegating_double_forwards_every_argument(settings: Settings):
    real = LlamaCppBackend(settings)
    try:
        double = DelegatingBackend(real)
        config = GenerationConfig(temperature=0.0, max_tokens=3, seed=1)
        messages = [Message(role="user", content="Say hi.")]
        chunks = list(double.stream_chat(messages, config, logprobs=2, cache_key="c1"))
        assert any(c.logprobs for c in chunks), "logprobs reached the real backend"
        assert double.count_prompt_tokens(messages) == real.count_prompt_tokens(messages)
        completion = list(double.stream_completion("Once upon a", config, logprobs=1))
        assert completion[-1].finish_reason and any(c.logprobs for c in completion)
    finally:
        real.close()


def test_the_remote_backend_says_it_cannot_complete_raw_text_and_refuses_with_a_typed_error(tmp_path):
    with tiny_server({("GET", "/v1/models"): models_route()}) as (url, seen):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url))
        try:
            assert isinstance(backend, Backend) and not backend.supports_completion
            asked = len(seen)
            with pytest.raises(GenerationError, match="not relayed"):
                list(backend.stream_completion("Once upon a", GenerationConfig()))
            assert len(seen) == asked, "nothing was sent to the server"
        finally:
            backend.close()
