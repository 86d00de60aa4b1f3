"""Generation settings on the real bundled model."""

from __future__ import annotations

import pytest
from conftest import GREEDY, run_turn

from engine import ConfigError, GenerationConfig, Settings

QUESTION = "Write three sentences about the sea."


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Memory off: these tests compare answers, and recall hits from other chats would change prompts."""
    return Settings(data_dir=tmp_path / "data", n_ctx=2048, memory=False)


def test_temperature_zero_is_deterministic(services):
    first, _ = run_turn(services, QUESTION)
    second, _ = run_turn(services, QUESTION)
    assert first.text.strip()
    assert first.text == second.text
    assert first.conversation_id != second.conversation_id


def test_fixed_seed_reproduces_a_sampled_answer(services):
    config = GenerationConfig(temperature=1.0, top_k=100, top_p=1.0, min_p=0.0, seed=1234, max_tokens=40)
    a, _ = run_turn(services, QUESTION, config)
    b, _ = run_turn(services, QUESTION, config)
    assert a.text == b.text
    others = {run_turn(services, QUESTION, config.replace(seed=s))[0].text for s in (1, 2, 3)}
    assert len(others | {a.text}) >= 2, "different seeds should sample different answers"


def test_top_k_one_equals_greedy(services):
    greedy, _ = run_turn(services, QUESTION)
    top1, _ = run_turn(services, QUESTION, GenerationConfig(temperature=0.9, top_k=1, seed=7, max_tokens=40))
    assert top1.text == greedy.text


def test_max_tokens_is_honoured(services):
    done, _ = run_turn(services, QUESTION, GREEDY.replace(max_tokens=5))
    assert done.usage.completion_tokens == 5
    assert done.finish_reason == "length"
    longer, _ = run_turn(services, QUESTION, GREEDY.replace(max_tokens=30))
    assert longer.text.startswith(done.text)
    assert len(longer.text) > len(done.text)


def test_an_answer_cut_inside_a_character_ends_at_its_last_whole_one(services):
    """An emoji is several byte tokens: max_tokens can end the answer between them. The answer
    (streamed and saved alike) then ends before that character, never in U+FFFD."""
    from engine.types import Message

    ask = [Message(role="user", content="Reply with three fire emoji: 🔥🔥🔥")]
    backend = services.models.backend
    answers = []
    for n in range(1, 10):
        chunks = list(backend.stream_chat(ask, GREEDY.replace(max_tokens=n)))
        answers.append("".join(c.text for c in chunks))
        assert chunks[-1].usage.completion_tokens == n and chunks[-1].finish_reason == "length"
    assert all("\ufffd" not in a for a in answers)
    whole = [a for a in answers if a]
    assert whole[-1].startswith("🔥🔥") and all(whole[-1].startswith(a) for a in answers)
    assert len(set(answers)) < len(
        answers
    )  # some cuts fell inside a character (the bundled model's 🔥 is 3 tokens)


def test_stop_string_ends_the_answer_before_it(services):
    full, _ = run_turn(services, QUESTION)
    words = full.text.split()
    assert len(words) > 6
    stop = words[4]
    cut = full.text.index(stop)
    stopped, streamed = run_turn(services, QUESTION, GREEDY.replace(stop=(stop,)))
    assert stopped.text == full.text[:cut]
    assert streamed == stopped.text
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text


def test_stream_equals_saved_answer(services):
    done, streamed = run_turn(services, QUESTION)
    saved = services.conversations.message(done.message_id)
    assert saved.content == streamed == done.text
    assert saved.config["temperature"] == 0.0
    assert saved.completion_tokens == done.usage.completion_tokens
    assert saved.model and saved.ttft_s > 0 and saved.tokens_per_s > 0


@pytest.mark.parametrize(
    "values, field",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_k": 3.5}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": "abc"}, "seed"),
        ({"min_p": float("nan")}, "min_p"),
        ({"mirostat_mode": 3}, "mirostat_mode"),
    ],
)
def test_invalid_values_name_the_field_and_range(values, field):
    with pytest.raises(ConfigError) as info:
        GenerationConfig.from_values(values)
    assert info.value.field == field
    assert field in str(info.value) or GenerationConfig.__dataclass_fields__[field].metadata["label"] in str(
        info.value
    )


def test_unknown_setting_is_rejected():
    with pytest.raises(ConfigError):
        GenerationConfig.from_values({"temprature": 0.5})


def test_every_decode_runs_on_the_one_llama_thread_whoever_asks(services):
    """Page workers, API threads and upkeep all ask for generations; llama.cpp must run on one
    thread only (a second thread that had run it slowed every decode by a third here)."""
    import threading

    backend = services.models.backend
    llm = backend._loaded
    decode = llm.eval
    seen: set[str] = set()

    def spy(tokens):
        seen.add(threading.current_thread().name)
        return decode(tokens)

    llm.eval = spy
    try:
        answers: list[str] = []
        callers = [
            threading.Thread(
                target=lambda: answers.append(run_turn(services, QUESTION)[1]), name=f"caller-{i}"
            )
            for i in range(2)
        ]
        for t in callers:
            t.start()
            t.join()
        assert backend.settle(None) >= 0  # from this thread too
    finally:
        del llm.eval
    assert len(answers) == 2 and all(answers)
    assert seen == {"hearth-llama"}
