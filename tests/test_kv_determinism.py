"""Temperature 0 gives one answer per prompt, whatever the KV cache holds (issue 8, item 1).

llama.cpp's logits depend in the last bits on how a prompt was split into batches; a tiny
n_batch makes every prompt many batches, so a cached prefix plus a short tail, evaluated
differently from a fresh prompt, would show up at once.
"""

from __future__ import annotations

import pytest

from engine import GenerationConfig, Settings, build
from engine.backends.kv_snapshots import common_prefix
from engine.types import Message

GREEDY = GenerationConfig(temperature=0.0, max_tokens=48)
SYSTEM = Message(role="system", content="You are a helpful assistant.")
QUESTION = "Write three sentences about the sea."


# the three rules on a CPU with flash attention: any batch (7), batches of 64 or more (512: the
# tiled kernel's), the fixed n_batch schedule (64: a batch of 64 takes the tiled kernel, a smaller
# one does not, and two of 64 do not fit); and without it, at its auto n_batch (512, any batch)
@pytest.fixture(
    params=[(True, 7), (True, 64), (True, 512), (False, None)],
    ids=["n_batch=7", "n_batch=64", "n_batch=512", "no-flash-attn"],
)
def backend(request, tmp_path):
    flash, n_batch = request.param
    settings = Settings(
        data_dir=tmp_path / "data", n_ctx=2048, n_batch=n_batch, flash_attn=flash, memory=False
    )
    services = build(settings)
    yield services.models.backend
    services.close()


def _answer(backend, *messages: Message, config: GenerationConfig = GREEDY) -> tuple[str, int]:
    text, _, cached = _stream(backend, [SYSTEM, *messages], config)
    return text, cached


def _stream(backend, messages: list[Message], config: GenerationConfig, logprobs: int | None = None):
    """One answer: its text, its tokens' log-probabilities (if asked for) and the cached prompt tokens."""
    text, scored, cached = [], [], 0
    for chunk in backend.stream_chat(messages, config, logprobs=logprobs):
        text.append(chunk.text)
        scored += chunk.logprobs or []
        if chunk.usage:
            cached = chunk.usage.cached_tokens
    return "".join(text), scored, cached


def test_greedy_answer_is_the_same_fresh_cached_after_another_chat_and_cleared(backend):
    ask = Message(role="user", content=QUESTION)
    backend.clear_cache()
    fresh, _ = _answer(backend, ask)
    same_prompt_cached, _ = _answer(backend, ask)
    _answer(backend, Message(role="user", content="Tell me a joke about cats and dogs, please."))
    other_chat_cached, _ = _answer(backend, ask)
    backend.clear_cache()
    cleared, _ = _answer(backend, ask)
    assert fresh.strip()
    assert same_prompt_cached == fresh
    assert other_chat_cached == fresh
    assert cleared == fresh


def test_a_follow_up_turn_reuses_the_prefix_and_answers_as_a_fresh_prompt_would(backend):
    first = Message(role="user", content=QUESTION)
    reply, _ = _answer(backend, first)
    follow_up = [
        first,
        Message(role="assistant", content=reply),
        Message(role="user", content="Now a haiku."),
    ]
    warm, cached = _answer(backend, *follow_up)
    backend.clear_cache()
    cold, cold_cached = _answer(backend, *follow_up)
    assert warm == cold
    assert cold_cached == 0
    earlier = backend.count_prompt_tokens([SYSTEM, first])
    # the whole earlier prompt (if at least min_batch long), or the fixed schedule's whole chunks
    # (quarter-n_batch head chunks, then n_batch chunks)
    assert cached == backend._reuse.rule.boundary(earlier)
    assert cached > 0 or earlier < 64  # a prompt under 64 tokens was one small batch: not clean


def test_a_fixed_seed_reproduces_a_sampled_answer_with_the_prompt_cached(backend):
    config = GenerationConfig(temperature=1.0, top_k=100, top_p=1.0, min_p=0.0, seed=42, max_tokens=40)
    ask = Message(role="user", content=QUESTION)
    backend.clear_cache()
    fresh, _ = _answer(backend, ask, config=config)
    cached, reused = _answer(backend, ask, config=config)
    assert cached == fresh
    assert reused > 0 or backend.count_prompt_tokens([SYSTEM, ask]) < backend._llm.n_batch


def test_settling_an_answer_lets_the_next_turn_reuse_it_and_answer_as_a_fresh_prompt_would(backend):
    # a long answer, so the generated tokens fill whole n_batch chunks past the prompt
    first = Message(role="user", content=QUESTION)
    backend.clear_cache()
    reply, _ = _answer(backend, first, config=GenerationConfig(temperature=0.0, max_tokens=160))
    prompt_tokens = backend.count_prompt_tokens([SYSTEM, first])
    follow_up = [
        first,
        Message(role="assistant", content=reply),
        Message(role="user", content="Now a haiku."),
    ]
    unsettled_reuse = backend.reusable_prefix(backend.render([SYSTEM, *follow_up]))
    settled = backend.settle(None)
    assert backend.settle(None) == 0  # nothing left to settle
    warm, cached = _answer(backend, *follow_up)
    backend.clear_cache()
    cold, _ = _answer(backend, *follow_up)
    assert warm == cold and warm.strip()
    if backend._reuse.rule.any_batch:  # the whole answer is settled and reused
        assert settled > 0 and unsettled_reuse <= prompt_tokens < prompt_tokens + settled <= cached
    else:  # the answer's whole chunks (or all of it, as the last 64 tokens are evaluated again) are
        # reused now, more than the prompt's reuse before settling
        assert backend._reuse.rule.boundary(settled + unsettled_reuse) == settled + unsettled_reuse
        assert settled > 0 and unsettled_reuse <= prompt_tokens and unsettled_reuse < cached


def test_a_short_shared_system_prompt_is_reused_and_answers_stay_those_of_a_fresh_prompt(tmp_path):
    # prompts shorter than one n_batch chunk: the shared system prompt is still reused (all of it
    # where any batch is clean, else the head chunks of a quarter of n_batch), as a llama.cpp
    # server reuses it too
    settings = Settings(data_dir=tmp_path / "data", n_ctx=2048, n_batch=64, flash_attn=True, memory=False)
    services = build(settings)
    backend = services.models.backend
    try:
        first, question = (Message(role="user", content=f"Name three {w}.") for w in ("rivers", "mountains"))
        shared = common_prefix(backend.render([SYSTEM, first]), backend.render([SYSTEM, question]))
        assert 16 <= shared and backend.count_prompt_tokens([SYSTEM, question]) < 64  # under one chunk
        backend.clear_cache()
        _answer(backend, first)
        warm, cached = _answer(backend, question)
        backend.clear_cache()
        cold, cold_cached = _answer(backend, question)
        assert warm == cold and warm.strip() and cold_cached == 0
        rule = backend._reuse.rule
        assert cached == (shared if rule.any_batch else shared // 16 * 16) > 0
    finally:
        services.close()


LIGHTHOUSE = (
    "The lighthouse stood on a rock at the edge of the bay. Every night the keeper climbed ninety-nine "
    "steps to light the lamp, and every morning he wrote the weather in a small green book. "
) * 4


@pytest.mark.parametrize(
    ("flash", "n_batch", "rule_name"),
    [
        (True, 63, "any-batch-v2"),
        (True, 64, "quarter-head-v1"),
        (True, 512, "min-batch-64-v1"),
        (False, 512, "any-batch-v2"),
    ],
    ids=["n_batch=63", "n_batch=64", "n_batch=512", "no-flash-attn"],
)
def test_a_cached_prefix_with_a_short_new_tail_gives_the_logits_of_a_fresh_prompt(
    tmp_path, flash, n_batch, rule_name
):
    # A prompt past 64 tokens whose new part is shorter than 64: llama.cpp's CPU flash attention
    # rounds batches of 64+ query rows differently from smaller ones, so a cached prefix plus a
    # short tail must not be mixed with a fresh evaluation's big batches. Compared to the last bit
    # through the answer's log-probabilities, where a greedy text could hide a difference. Without
    # flash attention (as attention_check may choose on a CPU) any batch of two or more is alike.
    settings = Settings(
        data_dir=tmp_path / "data", n_ctx=2048, memory=False, kv_snapshots=False, flash_attn=flash
    )
    services = build(settings.replace(n_batch=n_batch))
    backend, short = services.models.backend, GREEDY.replace(max_tokens=24)
    try:
        first = [SYSTEM, Message(role="user", content=LIGHTHOUSE + "Who climbed the steps?")]
        reply, _, _ = _stream(backend, first, short)
        backend.settle(None)
        follow_up = [
            *first,
            Message(role="assistant", content=reply),
            Message(role="user", content="And the book?"),
        ]
        _, warm, cached = _stream(backend, follow_up, short, logprobs=3)
        backend.clear_cache()
        _, cold, cold_cached = _stream(backend, follow_up, short, logprobs=3)
        prompt = backend.count_prompt_tokens(follow_up)
        assert cold_cached == 0 and cached > 0 and prompt > 64 and len(warm) == 24
        rule = backend._reuse.rule
        assert rule.name == rule_name
        if rule.any_batch:
            assert prompt - cached < 64  # only the short new tail was evaluated
        assert warm == cold  # every token's log-probability, and its top 3, to the last bit
    finally:
        services.close()
