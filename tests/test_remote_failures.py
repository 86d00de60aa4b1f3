"""A remote model server that dies mid-answer, returns garbage, cuts its stream short, goes
silent, or is not there: a clear typed error every time, the partial answer is saved and
shown, and the user's message is never lost. Small http.server fakes stand in for the
broken servers; the crash is a real llama-cpp-python server killed mid-stream."""

from __future__ import annotations

import json
import time

import pytest
from conftest import GREEDY
from remote_servers import (
    delta,
    models_route,
    reasoning,
    send_json,
    send_stream,
    start_llama_server,
    tiny_server,
)

from app import handlers as h
from app.controls import control_values
from engine import GenerationConfig, Settings, build
from engine.backends.remote import RemoteBackend
from engine.backends.server_kinds import LLAMA_CPP, OLLAMA
from engine.errors import ConfigError, GenerationError, ModelError
from engine.types import Message, TextDelta, TurnStarted

LONG = GREEDY.replace(max_tokens=300)
HELLO = [Message(role="user", content="Hello")]


def remote_services(tmp_path, url: str, **changes):
    return build(Settings(data_dir=tmp_path / "data", backend_url=url, **changes))


def turn_until_error(services, text: str, *, on_delta=None):
    """Run a turn that must fail; return (error, streamed text, conversation id)."""
    streamed, conversation_id = [], None
    with pytest.raises(GenerationError) as failure:
        for event in services.chat.stream_turn(None, text, LONG):
            if isinstance(event, TurnStarted):
                conversation_id = event.conversation_id
            elif isinstance(event, TextDelta):
                streamed.append(event.text)
                if on_delta:
                    on_delta(len(streamed))
    return failure.value, "".join(streamed), conversation_id


def test_a_server_killed_mid_answer_keeps_the_partial_answer_and_the_message(tmp_path):
    server = start_llama_server(tmp_path)
    services = remote_services(tmp_path, server.url)
    try:
        error, streamed, conversation_id = turn_until_error(
            services, "Write a long story about a dragon.", on_delta=lambda n: n == 3 and server.kill()
        )
        assert "Lost the connection to the model server" in str(error) and "text so far is kept" in str(error)
        saved = services.conversations.messages(conversation_id)
        assert [m.role for m in saved] == ["user", "assistant"]
        assert saved[0].content == "Write a long story about a dragon."
        assert streamed and saved[1].content == streamed and saved[1].finish_reason == "error"
        # the next message (server still down) is saved too, and the page says what happened
        values = control_values(GREEDY)
        *_, (history, _, box, _) = h.respond(
            services, conversation_id, "Are you there?", [], False, "", *values
        )
        assert "Generation failed" in history[-1]["content"] and server.url in history[-1]["content"]
        assert box == "Are you there?", "the text box keeps what the user typed"
        assert services.conversations.messages(conversation_id)[-1].content == "Are you there?"
    finally:
        services.close()
        server.stop()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda h: send_stream(h, ["data: {not json"]), "malformed JSON"),
        (lambda h: send_stream(h, ['data: {"object": "x"}']), "without choices"),
        (lambda h: send_stream(h, ["<html><body>Welcome to nginx</body></html>"]), "not an event stream"),
        (
            lambda h: send_json(h, {"error": {"message": "model crashed: out of memory"}}, 500),
            "refused the request (HTTP 500): model crashed: out of memory",
        ),
        (
            lambda h: send_stream(h, ['data: {"error": {"message": "CUDA error"}}']),
            "failed while generating: CUDA error",
        ),
    ],
)
def test_garbage_from_the_server_is_a_clear_error(tmp_path, reply, message):
    routes = {("GET", "/v1/models"): models_route(), ("POST", "/v1/chat/completions"): reply}
    with tiny_server(routes) as (url, _):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url))
        with pytest.raises(GenerationError, match="model server") as failure:
            list(backend.stream_chat(HELLO, GREEDY))
        assert message in str(failure.value)
        backend.close()


@pytest.mark.parametrize("complete", [True, False])
def test_a_stream_cut_short_keeps_what_arrived(tmp_path, complete):
    """Ended cleanly without [DONE] or a finish reason, or dropped mid-chunk: both are failures."""
    chat = lambda h: send_stream(h, [delta("Hello"), delta(" wor")], complete=complete)  # noqa: E731
    with tiny_server({("GET", "/v1/models"): models_route(), ("POST", "/v1/chat/completions"): chat}) as (
        url,
        _,
    ):
        services = remote_services(tmp_path, url, memory=False)
        try:
            error, streamed, conversation_id = turn_until_error(services, "Say hello world.")
            assert ("mid-stream" if complete else "Lost the connection") in str(error)
            saved = services.conversations.messages(conversation_id)
            assert (
                [m.content for m in saved]
                == ["Say hello world.", "Hello wor"]
                == ["Say hello world.", streamed]
            )
        finally:
            services.close()


def test_a_silent_server_times_out_with_a_clear_message(tmp_path):
    def slow(h):
        time.sleep(2)
        send_stream(h, [delta("late", "stop"), "data: [DONE]"])

    with tiny_server({("GET", "/v1/models"): models_route(), ("POST", "/v1/chat/completions"): slow}) as (
        url,
        _,
    ):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url, backend_timeout=0.3))
        with pytest.raises(GenerationError, match="stopped answering .*ReadTimeout.*--backend-timeout"):
            list(backend.stream_chat(HELLO, GREEDY))
        backend.close()


def test_a_server_that_is_not_there_leaves_the_app_up_without_a_model(tmp_path):
    with tiny_server({}) as (url, _):
        pass  # the port is free again: nothing listens there
    services = remote_services(tmp_path, url)
    try:
        assert services.models.info is None and "Could not reach a model server" in services.warnings[0]
        with pytest.raises(ModelError, match="No model is loaded"):
            list(services.chat.stream_turn(None, "Hi", GREEDY))
    finally:
        services.close()


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (lambda h: send_stream(h, ["<html>hi</html>"]), "did not answer JSON"),
        (lambda h: send_json(h, {"data": []}), "serves no model yet"),
        (lambda h: send_json(h, {"models": ["a"]}), "did not list models the OpenAI way"),
        (lambda h: send_json(h, {"detail": "Invalid API key"}, 401), "refused the key (HTTP 401)"),
    ],
)
def test_a_server_that_is_not_openai_compatible_is_refused_at_connect(tmp_path, models, message):
    with tiny_server({("GET", "/v1/models"): models}) as (url, _):
        with pytest.raises(ModelError) as failure:
            RemoteBackend(Settings(data_dir=tmp_path, backend_url=url))
        assert message in str(failure.value)


def test_bad_urls_are_refused_before_anything_starts(tmp_path):
    for url in ("gpu-box:8000", "ftp://gpu-box", "http://", "http://host:notaport"):
        with pytest.raises(ConfigError, match="backend_url"):
            Settings(data_dir=tmp_path, backend_url=url)


# What each kind of server is sent (vLLM and llama.cpp's own server cannot run here: recorded fakes)


def _chat_ok(h):
    send_stream(h, [delta("ok"), delta("", "stop"), "data: [DONE]"])


def _bodies(seen) -> list[dict]:
    return [json.loads(body) for method, path, _, body in seen if path == "/v1/chat/completions"]


def test_llama_cpp_server_gets_its_sampler_names_grammar_context_and_tokenizer(tmp_path):
    routes = {
        ("GET", "/v1/models"): models_route("llamacpp", "qwen"),
        ("GET", "/props"): lambda h: send_json(h, {"default_generation_settings": {"n_ctx": 8192}}),
        ("POST", "/tokenize"): lambda h: send_json(h, {"tokens": [1, 2, 3]}),
        ("POST", "/apply-template"): lambda h: send_json(h, {"prompt": "<s>templated"}),
        ("POST", "/v1/chat/completions"): _chat_ok,
    }
    with tiny_server(routes) as (url, seen):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url, backend_key="k1"))
        assert (backend.kind, backend.info.n_ctx, backend.facts.n_ctx_source) == (
            LLAMA_CPP,
            8192,
            "the server's /props",
        )
        assert backend.ignored_settings == () and backend.count_tokens("anything") == 3
        config = GenerationConfig(repeat_penalty=1.3, typical_p=0.9, mirostat_mode=2, seed=5, stop=("END",))
        assert "".join(c.text for c in backend.stream_chat(HELLO, config, grammar='root ::= "ok"')) == "ok"
        body = _bodies(seen)[-1]
        assert (body["repeat_penalty"], body["typical_p"], body["mirostat"], body["seed"]) == (1.3, 0.9, 2, 5)
        assert body["grammar"] == 'root ::= "ok"' and body["stop"] == ["END"] and body["model"] == "qwen"
        assert all(headers.get("Authorization") == "Bearer k1" for _, _, headers, _ in seen)
        backend.close()


@pytest.mark.parametrize(
    ("version", "grammar_field"), [("0.11.0", "structured_outputs"), ("0.9.2", "guided_grammar")]
)
def test_vllm_gets_repetition_penalty_its_grammar_field_and_max_model_len(tmp_path, version, grammar_field):
    listing = {"data": [{"id": "llama-70b", "owned_by": "vllm", "max_model_len": 32768}]}
    routes = {
        ("GET", "/v1/models"): lambda h: send_json(h, listing),
        ("GET", "/version"): lambda h: send_json(h, {"version": version}),
        ("POST", "/tokenize"): lambda h: send_json(
            h, {"count": 7, "tokens": [0] * 7, "max_model_len": 32768}
        ),
        ("POST", "/v1/chat/completions"): _chat_ok,
    }
    with tiny_server(routes) as (url, seen):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url, backend_n_ctx=16384))
        assert backend.info.n_ctx == 16384, "--backend-n-ctx may reserve less than the server holds"
        assert backend.ignored_settings == (
            "typical_p",
            "mirostat_mode",
            "mirostat_tau",
            "mirostat_eta",
            "dynatemp_range",
            "dynatemp_exponent",
            "top_n_sigma",
            "xtc_probability",
            "xtc_threshold",
            "dry_multiplier",
            "dry_base",
            "dry_allowed_length",
            "dry_penalty_last_n",
            "samplers",
        )
        list(
            backend.stream_chat(HELLO, GenerationConfig(top_k=0, repeat_penalty=1.2), grammar='root ::= "x"')
        )
        body = _bodies(seen)[-1]
        assert body["repetition_penalty"] == 1.2 and body["top_k"] == -1 and "repeat_penalty" not in body
        want = {"grammar": 'root ::= "x"'} if grammar_field == "structured_outputs" else 'root ::= "x"'
        assert body[grammar_field] == want
        backend.close()


def test_a_plain_openai_server_gets_standard_names_and_estimated_counts(tmp_path):
    routes = {
        ("GET", "/v1/models"): models_route("library", "llama3"),
        ("POST", "/v1/chat/completions"): _chat_ok,
    }
    with tiny_server(routes) as (url, seen):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url))
        assert backend.kind is OLLAMA and not backend.token_counts_exact
        assert backend.count_tokens("x" * 40) == 10 and "assumed" in backend.facts.n_ctx_source
        assert {"top_k", "min_p", "repeat_penalty"} <= set(backend.ignored_settings)
        list(backend.stream_chat(HELLO, GenerationConfig(top_k=5)))
        assert set(_bodies(seen)[-1]) <= {
            "model",
            "messages",
            "stream",
            "stream_options",
            "max_tokens",
            "temperature",
            "top_p",
            "presence_penalty",
            "frequency_penalty",
        }
        with pytest.raises(GenerationError, match="cannot constrain output with a grammar"):
            list(backend.stream_chat(HELLO, GREEDY, grammar='root ::= "x"'))
        backend.close()


def test_thoughts_stream_between_think_tags_and_missing_tokenizers_fall_back_to_estimates(tmp_path):
    def chat(h):
        send_stream(
            h,
            [
                reasoning("Let me think"),
                reasoning(" more."),
                delta("Answer"),
                delta("", "stop"),
                "data: [DONE]",
            ],
        )

    routes = {
        ("GET", "/v1/models"): models_route("llamacpp", "qwen3"),
        ("GET", "/props"): lambda h: send_json(h, {"default_generation_settings": {"n_ctx": 4096}}),
        ("POST", "/v1/chat/completions"): chat,
    }  # no /tokenize or /apply-template: e.g. a proxy that passes only /v1
    with tiny_server(routes) as (url, _):
        backend = RemoteBackend(Settings(data_dir=tmp_path, backend_url=url))
        assert (
            "".join(c.text for c in backend.stream_chat(HELLO, GREEDY))
            == "<think>Let me think more.</think>Answer"
        )
        assert not backend.token_counts_exact and backend.count_tokens("x" * 8) == 2
        backend.close()
