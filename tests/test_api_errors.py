"""The API's errors and keys over raw HTTP: OpenAI's error shape and status codes."""

from __future__ import annotations

import argparse

import httpx
import pytest
from api_support import API_KEY, serve_api

from api import api_key_from, require_api_key_for
from cli.serve_cmd import add_api_arguments
from engine import Settings, build
from engine.errors import ConfigError

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    s = build(Settings(data_dir=tmp_path_factory.mktemp("api-errors") / "data", n_ctx=2048))
    assert not s.warnings, s.warnings
    yield s
    s.close()


@pytest.fixture(scope="module")
def base_url(services):
    with serve_api(services) as url:
        yield url


def post(base_url: str, path: str, body, headers=AUTH, **kwargs) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, headers=headers, timeout=120, **kwargs)


def assert_error(r: httpx.Response, status: int, *, param=None, code=None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 5),
        ("top_p", 1.5),
        ("top_k", -1),
        ("min_p", "lots"),
        ("max_tokens", 0),
        ("seed", "random"),
        ("presence_penalty", 3),
        ("mirostat_mode", 7),
        ("stop", [""]),
    ],
)
def test_a_bad_sampling_value_is_a_400_naming_the_field(base_url, field, value):
    error = assert_error(post(base_url, "/v1/chat/completions", {"messages": HI, field: value}), 400)
    assert error["param"] == field


def test_request_shape_errors_are_400s(base_url):
    assert_error(post(base_url, "/v1/chat/completions", {"messages": HI, "n": 2}), 400, param="n")
    assert_error(post(base_url, "/v1/chat/completions", {"messages": []}), 400, param="messages")
    assert_error(post(base_url, "/v1/chat/completions", {}), 400, param="messages")
    r = httpx.post(f"{base_url}/v1/chat/completions", content=b"{not json", headers=AUTH)
    assert "at line 1 column 2" in assert_error(r, 400)["message"]  # where the parser stopped
    deep = b'{"messages": ' + b"[" * 400 + b"]" * 400 + b"}"
    r = httpx.post(f"{base_url}/v1/chat/completions", content=deep, headers=AUTH)
    assert "recursion limit" in assert_error(r, 400)["message"]
    body = {"messages": HI, "top_logprobs": 2}
    assert_error(post(base_url, "/v1/chat/completions", body), 400, param="top_logprobs")
    body = {"messages": HI, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}
    assert_error(post(base_url, "/v1/chat/completions", body), 400, param="response_format")
    body = {"messages": HI, "hearth": {"conversation": "typo"}}
    assert_error(post(base_url, "/v1/chat/completions", body), 400, param="hearth.conversation")
    assert_error(post(base_url, "/v1/completions", {"prompt": ["a", "b"]}), 400, param="prompt")
    assert_error(post(base_url, "/v1/completions", {"prompt": "a", "best_of": 3}), 400, param="best_of")
    # the field a client sent, not the member of pydantic's union that failed ("content.str")
    body = {"messages": [{"role": "user", "content": 7}], "tool_choice": "sometimes"}
    assert_error(post(base_url, "/v1/chat/completions", body), 400, param="messages.0.content")
    body = {"messages": HI, "tool_choice": "sometimes"}
    assert_error(post(base_url, "/v1/chat/completions", body), 400, param="tool_choice")


def test_an_image_part_is_refused_saying_the_api_takes_text(base_url):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]}
    error = assert_error(post(base_url, "/v1/chat/completions", body), 400, param="messages.0.content")
    assert "'image_url'" in error["message"] and "does not take images" in error["message"]
    parts = [{"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]
    body = {"input": [{"role": "user", "content": parts}]}
    error = assert_error(post(base_url, "/v1/responses", body), 400, param="input.0.content")
    assert "'input_image'" in error["message"]
    assert_error(post(base_url, "/v1/embeddings", {"input": [""]}), 400, param="input")
    # token ids (as LangChain's OpenAIEmbeddings sends by default) are named, not a type error
    error = assert_error(post(base_url, "/v1/embeddings", {"input": [[9906, 1917]]}), 400, param="input")
    assert "check_embedding_ctx_length" in error["message"]
    error = assert_error(post(base_url, "/v1/completions", {"prompt": [1, 2, 3]}), 400, param="prompt")
    assert "token arrays" in error["message"]


def test_a_prompt_longer_than_the_context_is_a_400(base_url):
    body = {"messages": [{"role": "user", "content": "word " * 3000}]}
    error = assert_error(post(base_url, "/v1/chat/completions", body), 400, code="context_length_exceeded")
    # OpenAI's wording, by which clients such as LiteLLM recognise a full context
    assert error["message"].startswith("This model's maximum context length is 2048 tokens.")
    error = assert_error(post(base_url, "/v1/completions", {"prompt": "word " * 3000}), 400, param="prompt")
    assert error["code"] == "context_length_exceeded" and "--n-ctx" in error["message"]
    body["stream"] = True  # the error comes before the stream starts: a real status, not an event
    assert_error(post(base_url, "/v1/chat/completions", body), 400, code="context_length_exceeded")


def test_unknown_models_and_conversations_are_404s(base_url):
    assert_error(
        post(base_url, "/v1/chat/completions", {"model": "gpt-4o", "messages": HI}),
        404,
        param="model",
        code="model_not_found",
    )
    assert_error(
        post(base_url, "/v1/embeddings", {"model": "gpt-4o", "input": "x"}), 404, code="model_not_found"
    )
    assert_error(httpx.get(f"{base_url}/v1/models/gpt-4o", headers=AUTH), 404, code="model_not_found")
    body = {"messages": HI, "hearth": {"conversation_id": "no-such-conversation"}}
    assert_error(post(base_url, "/v1/chat/completions", body), 404)
    assert_error(httpx.get(f"{base_url}/v1/nothing/here", headers=AUTH), 404)


def test_a_body_over_the_limit_is_a_413(base_url):
    big = b'{"messages": [{"role": "user", "content": "' + b"x" * (9 * 1024 * 1024) + b'"}]}'
    r = httpx.post(f"{base_url}/v1/chat/completions", content=big, headers=AUTH, timeout=120)
    assert_error(r, 413, code="request_too_large")


def test_every_v1_route_needs_the_key(base_url):
    for method, path in [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/unknown"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": API_KEY}):
            r = httpx.request(
                method, f"{base_url}{path}", json={"messages": HI, "input": "x"}, headers=headers
            )
            error = assert_error(r, 401, code="invalid_api_key")
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert API_KEY not in error["message"]
    assert httpx.get(f"{base_url}/v1/models", headers=AUTH).status_code == 200


def test_health_is_open_and_reveals_nothing(base_url, services):
    r = httpx.get(f"{base_url}/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert services.models.info.name not in r.text and "SmolLM" not in r.text


def test_without_a_model_calls_are_503s(tmp_path):
    s = build(Settings(data_dir=tmp_path / "data", n_ctx=2048), load_model=False)
    try:
        with serve_api(s, api_key=None) as url:
            assert_error(
                post(url, "/v1/chat/completions", {"messages": HI}, headers={}), 503, code="model_not_loaded"
            )
            assert_error(
                post(url, "/v1/completions", {"prompt": "x"}, headers={}), 503, code="model_not_loaded"
            )
            assert httpx.get(f"{url}/health").status_code == 503
            assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "all-MiniLM-L6-v2"
    finally:
        s.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_api_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_key_comes_from_the_flag_the_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HEARTH_API_KEY", raising=False)
    assert api_key_from(_args()) is None
    assert api_key_from(_args("--api-key", "flag-key-123")) == "flag-key-123"
    key_file = tmp_path / "key"
    key_file.write_text("file-key-456\n", encoding="utf-8")
    assert api_key_from(_args("--api-key-file", str(key_file))) == "file-key-456"
    monkeypatch.setenv("HEARTH_API_KEY", "env-key-789")
    assert api_key_from(_args()) == "env-key-789"
    assert api_key_from(_args("--api-key", "flag-key-123")) == "flag-key-123"
    with pytest.raises(ConfigError):
        api_key_from(_args("--api-key", "short"))
    with pytest.raises(ConfigError):
        api_key_from(_args("--api-key-file", str(tmp_path / "missing")))
    with pytest.raises(SystemExit):
        _args("--api-key", "flag-key-123", "--api-key-file", str(key_file))


def test_a_key_is_required_beyond_loopback():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        require_api_key_for(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(ConfigError):
            require_api_key_for(host, None)
        require_api_key_for(host, "some-key-123")


def test_the_gate_turns_away_calls_beyond_its_limit():
    from api.errors import APIError
    from api.streams import Gate

    gate = Gate(limit=2)
    gate.enter()
    gate.enter()
    with pytest.raises(APIError) as refused:
        gate.enter()
    assert refused.value.status == 503 and refused.value.code == "server_busy"
    gate.leave()
    gate.enter()  # a finished call frees its place


def test_api_generations_reuse_idle_threads_and_overlapping_ones_get_their_own():
    """A thread start cost 2.5-4 ms of every API call's TTFT here: idle runners are kept."""
    import threading

    from api.streams import _Runners

    runners = _Runners()
    seen: list[threading.Thread] = []

    def job(release: threading.Event | None = None, ran: threading.Event | None = None):
        seen.append(threading.current_thread())
        if ran is not None:
            ran.set()
        if release is not None:
            release.wait(10)

    for _ in range(3):  # one after the other: one thread serves them all
        ran = threading.Event()
        runners.run(lambda ran=ran: job(ran=ran))
        assert ran.wait(10)
        for _ in range(1000):  # the runner counts itself idle right after its job
            if runners._idle:
                break
            threading.Event().wait(0.01)
    assert len(set(seen)) == 1 and seen[0].name == "hearth-api-generation"

    release, started = threading.Event(), [threading.Event(), threading.Event()]
    for ran in started:  # at the same time: each gets a thread
        runners.run(lambda ran=ran: job(release, ran))
    try:
        assert all(ran.wait(10) for ran in started)
        assert len(set(seen[3:])) == 2
    finally:
        release.set()


def test_a_stream_gets_its_headers_while_a_long_prompt_is_still_evaluated(services, base_url, monkeypatch):
    """A client's first-byte timeout must not run out during a long evaluation (or a wait for
    the model): the stream starts after HEADERS_WITHIN_S, the answer follows when it comes."""
    import threading

    from backend_doubles import DelegatingBackend

    from api import streams

    class Slow(DelegatingBackend):  # the real model, after a hold that only the client can end
        def __init__(self, inner):
            super().__init__(inner)
            self.release, self.released = threading.Event(), None

        def stream_chat(self, messages, config, **kwargs):
            self.released = self.release.wait(30)
            yield from self.inner.stream_chat(messages, config, **kwargs)

    monkeypatch.setattr(streams, "HEADERS_WITHIN_S", 0.2)
    slow = Slow(services.models._backend)
    monkeypatch.setattr(services.models, "_backend", slow)
    body = {"messages": HI, "stream": True, "max_tokens": 8, "temperature": 0}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        slow.release.set()  # only now can the model answer
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert slow.released is True  # the headers came while the model was held, not after
    assert lines[-1] == "data: [DONE]" and '"finish_reason":"length"' in lines[-2]
    # an error found before evaluation is still its own status, not an event in a 200 stream
    body = {"messages": [{"role": "user", "content": "word " * 3000}], "stream": True}
    assert_error(post(base_url, "/v1/chat/completions", body), 400, code="context_length_exceeded")
