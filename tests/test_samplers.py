"""Every sampler llama.cpp has, driven on the bundled model: each one changes what it should."""

from __future__ import annotations

import pytest

from engine import GenerationConfig, Settings
from engine.config import DEFAULT_SAMPLERS
from engine.errors import ConfigError
from engine.types import Message

MESSAGES = [Message(role="user", content="Name a colour.")]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from engine.backends.llama_cpp import LlamaCppBackend

    data = tmp_path_factory.mktemp("samplers")
    b = LlamaCppBackend(Settings(data_dir=data, n_ctx=1024, kv_snapshots=False))
    yield b
    b.close()


def _answer(backend, messages=MESSAGES, **values) -> tuple[str, list]:
    config = GenerationConfig(max_tokens=values.pop("max_tokens", 10), **values)
    text, scored = [], []
    for chunk in backend.stream_chat(messages, config, logprobs=5):
        text.append(chunk.text)
        scored.extend(chunk.logprobs or ())
    return "".join(text), scored


def _token_id(backend, piece: bytes) -> int:
    ids = backend._llm.tokenize(piece, add_bos=False, special=False)
    assert len(ids) == 1
    return ids[0]


def test_stock_settings_keep_the_stock_chain_and_greedy_answers_stay_the_same(backend):
    assert not GenerationConfig().uses_extra_samplers()
    stock, _ = _answer(backend, temperature=0.0)
    # the custom chain with every extra sampler off gives the same greedy answer, token for token
    reordered, _ = _answer(backend, temperature=0.0, samplers=tuple(reversed(DEFAULT_SAMPLERS)))
    assert reordered == stock


@pytest.mark.parametrize(
    "values",
    [
        {"temperature": 0.0, "repeat_penalty": 1.1},  # Hearth's default penalty, greedy
        {"temperature": 0.0, "repeat_penalty": 1.0},
        {"temperature": 0.0, "repeat_penalty": 1.6, "presence_penalty": 0.8, "frequency_penalty": 0.6},
        {"temperature": 0.8, "seed": 5},  # Hearth's default samplers, a seeded draw
        {"temperature": 1.5, "seed": 9, "top_k": 80, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.6},
    ],
    ids=["greedy", "greedy-no-penalty", "greedy-strong", "sampled", "sampled-wide-strong"],
)
def test_answers_over_the_cut_candidates_are_llama_cpp_pythons_own(backend, monkeypatch, values):
    """With the stock samplers, llama-cpp-python's chain runs over the tokens that can still be
    chosen (engine/backends/sampler_chain.stock_chain): the same answers, token for token, as over
    the whole vocabulary, greedy or drawn with the same seed."""
    from engine.backends import sampler_chain

    calls = []
    stock = sampler_chain.stock_chain
    monkeypatch.setattr(sampler_chain, "stock_chain", lambda *a: calls.append(1) or stock(*a))
    ask = [Message(role="user", content="Write a short poem about rain, repeating the word rain.")]
    cut, cut_scored = _answer(backend, ask, max_tokens=60, **values)
    assert calls  # the cut chain ran
    monkeypatch.setattr(sampler_chain, "stock_chain", lambda *a: None)  # llama-cpp-python's chain
    whole, whole_scored = _answer(backend, ask, max_tokens=60, **values)
    assert len(whole_scored) > 20
    assert [t.token_bytes for t in cut_scored] == [t.token_bytes for t in whole_scored]
    assert cut == whole


def test_the_cut_stock_chain_is_only_for_what_it_cannot_change():
    class Llm:
        last_n_tokens_size = 64

    from engine.backends.sampler_chain import stock_chain

    for values in (
        {"temperature": 0.0, "repeat_penalty": 0.9},  # raises logits
        {"temperature": 0.0, "presence_penalty": -0.5},
        {"temperature": 0.7, "frequency_penalty": -0.5},
        {"temperature": 0.0, "xtc_probability": 0.5},  # removes top choices
        {"temperature": 0.7, "top_k": 0},  # no top-k: every token can be drawn
        {"temperature": 0.7, "mirostat_mode": 2},
    ):
        assert stock_chain(None, Llm(), GenerationConfig(**values), 1) is None, values


def test_a_banning_logit_bias_on_the_greedy_token_changes_it(backend):
    _, scored = _answer(backend, temperature=0.0)
    first, runner_up = scored[0].top[0], scored[0].top[1]
    assert scored[0].token_bytes == first.token_bytes
    _, banned = _answer(
        backend, temperature=0.0, logit_bias=((_token_id(backend, first.token_bytes), -100.0),)
    )
    assert banned[0].token_bytes == runner_up.token_bytes
    third = scored[0].top[2]
    _, boosted = _answer(
        backend, temperature=0.0, logit_bias=((_token_id(backend, third.token_bytes), 100.0),)
    )
    assert boosted[0].token_bytes == third.token_bytes


def test_xtc_always_on_with_a_low_threshold_removes_the_top_choice(backend):
    _, greedy = _answer(backend, temperature=0.0)
    _, xtc = _answer(backend, temperature=0.0, xtc_probability=1.0, xtc_threshold=0.01)
    # XTC keeps only the least likely of the tokens above the threshold: not the top one
    assert xtc[0].token_bytes != greedy[0].token_bytes
    assert xtc[0].logprob < greedy[0].top[1].logprob


def test_top_n_sigma_near_zero_collapses_sampling_to_greedy(backend):
    greedy, _ = _answer(backend, temperature=0.0)
    wide = dict(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0)
    sampled = {_answer(backend, seed=seed, **wide)[0] for seed in range(4)}
    assert sampled != {greedy}  # at this temperature the seeds differ ...
    narrowed = {_answer(backend, seed=seed, top_n_sigma=0.0001, **wide)[0] for seed in range(4)}
    assert narrowed == {greedy}  # ... until top-n-sigma keeps only the best token


def test_sampler_order_decides_which_stages_run(backend):
    greedy, _ = _answer(backend, temperature=0.0)
    hot = dict(temperature=1.5, top_k=1, top_p=1.0, min_p=0.0)
    assert {_answer(backend, seed=s, **hot)[0] for s in range(3)} == {greedy}
    without_top_k = ("penalties", "top_p", "min_p", "temperature")
    assert {_answer(backend, seed=s, samplers=without_top_k, **hot)[0] for s in range(3)} != {greedy}


def test_dynamic_temperature_changes_sampled_answers(backend):
    base = dict(temperature=0.8, top_k=0, top_p=1.0, min_p=0.0, max_tokens=16)
    plain = [_answer(backend, seed=s, **base)[0] for s in range(3)]
    dynamic = [_answer(backend, seed=s, dynatemp_range=0.8, **base)[0] for s in range(3)]
    assert plain != dynamic
    # a zero range is plain temperature, through the custom chain
    same = [_answer(backend, seed=s, samplers=("penalties", "temperature"), **base)[0] for s in range(3)]
    assert same == plain


def test_dry_breaks_a_repetition(backend):
    ask = [Message(role="user", content="Repeat exactly: red blue red blue red blue red blue red blue")]
    plain, _ = _answer(backend, ask, temperature=0.0, repeat_penalty=1.0, max_tokens=24)
    dry, _ = _answer(backend, ask, temperature=0.0, repeat_penalty=1.0, max_tokens=24, dry_multiplier=2.0)
    assert plain.count("red red") > dry.count("red red")  # DRY cuts the loop short


def test_sampler_settings_validate_and_round_trip():
    config = GenerationConfig.from_values(
        {"logit_bias": "12:-5, 7:-1000", "samplers": "top_k;typical_p;temp"}
    )
    assert config.logit_bias == ((12, -5.0), (7, -100.0))  # below -100 is a ban, stored as -100
    assert config.samplers == ("top_k", "typ_p", "temperature")
    assert GenerationConfig.from_values(config.to_dict()) == config
    assert GenerationConfig.from_values({"logit_bias": {"3": 2}}).logit_bias == ((3, 2.0),)
    for bad in (
        {"samplers": "top_k;nucleus"},
        {"samplers": "top_k,top_k"},
        {"logit_bias": "x:1"},
        {"logit_bias": "5:500"},
        {"xtc_threshold": 0.9},
        {"dry_allowed_length": 0},
    ):
        with pytest.raises(ConfigError):
            GenerationConfig.from_values(bad)


def test_api_fields_and_remote_servers_come_from_the_same_fields():
    from api.schemas import ChatCompletionRequest
    from engine.backends.server_kinds import LLAMA_CPP, OLLAMA, VLLM, ignored_settings, request_body

    body = ChatCompletionRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "logit_bias": {"5": -100},
            "samplers": ["top_k", "xtc"],
            "xtc_probability": 0.5,
            "dry_multiplier": 0.8,
            "top_n_sigma": 1.5,
        }
    )
    config = body.generation_config()
    assert (config.logit_bias, config.samplers, config.xtc_probability) == (
        ((5, -100.0),),
        ("top_k", "xtc"),
        0.5,
    )
    assert ignored_settings(LLAMA_CPP) == ()
    assert {"dry_multiplier", "xtc_probability", "top_n_sigma", "samplers"} <= set(ignored_settings(VLLM))
    assert "logit_bias" in ignored_settings(OLLAMA) and "logit_bias" not in ignored_settings(VLLM)
    wire = request_body(VLLM, model="m", messages=MESSAGES, config=config, max_tokens=5)
    assert wire["logit_bias"] == {"5": -100.0} and "samplers" not in wire
    wire = request_body(LLAMA_CPP, model="m", messages=MESSAGES, config=config, max_tokens=5)
    assert wire["samplers"] == ["top_k", "xtc"] and wire["dry_multiplier"] == 0.8
