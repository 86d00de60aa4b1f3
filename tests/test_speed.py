"""Prompt-lookup drafting and the start-up warm-up, on the bundled model."""

from __future__ import annotations

import os

from conftest import GREEDY, run_turn

from engine import GenerationConfig, Settings, build
from engine.backends.llama_cpp import LlamaCppBackend
from engine.backends.speculative import PromptLookup, drafted
from engine.types import Message

PASSAGE = (
    "The lighthouse stood on a rock at the edge of the bay. Every night the keeper climbed ninety-nine "
    "steps to light the lamp, and every morning he wrote the weather in a small green book."
)
QUOTE = [
    Message(role="system", content="You repeat text exactly when asked."),
    Message(role="user", content=f"Repeat this passage word for word:\n\n{PASSAGE}"),
]


def test_prompt_lookup_guesses_from_the_latest_occurrence_of_the_longest_suffix():
    lookup = PromptLookup([5, 6, 7, 8, 9, 1, 2, 5, 6, 3, 4, 9, 5])
    lookup.append(6)  # suffix (5, 6) occurred twice; the latest was followed by 3 (position 9)
    assert lookup.guess == (9, 2)
    lookup.append(3)  # (5, 6, 3) matches 3 tokens there, and (9, 5, 6, 3) only here: 3
    assert lookup.guess == (10, 3)
    assert lookup.acceptance.hits == [1, 0, 0, 0, 0, 0, 0]  # the guess 3 after a 2-token match came true


def test_drafting_is_off_by_default_and_the_switch_turns_it_on(monkeypatch, tmp_path):
    # off by default: drafts change which logits (batch or one-token) a sampled token is drawn
    # from, so a recorded seed would not reproduce an answer; and at Hearth's default sampling
    # it did not pay here (bench_speed)
    from cli import global_parser, settings_from

    assert not Settings(data_dir=tmp_path).prompt_lookup
    for name in [n for n in os.environ if n.startswith("HEARTH_")]:
        monkeypatch.delenv(name)
    assert not settings_from(global_parser().parse_args(["conversations"])).prompt_lookup
    assert settings_from(global_parser().parse_args(["--prompt-lookup", "conversations"])).prompt_lookup
    monkeypatch.setenv("HEARTH_PROMPT_LOOKUP", "1")
    assert settings_from(global_parser().parse_args(["conversations"])).prompt_lookup


def test_greedy_answer_is_identical_with_and_without_drafting(tmp_path):
    answers = []
    for on in (True, False):
        backend = LlamaCppBackend(Settings(data_dir=tmp_path / str(on), n_ctx=2048).replace(prompt_lookup=on))
        try:
            config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=60)
            answers.append("".join(c.text for c in backend.stream_chat(QUOTE, config)))
            assert 2 not in backend._batch_costs._seen  # greedy answers never evaluate a draft batch
        finally:
            backend.close()
    assert answers[0] == answers[1] and "lighthouse" in answers[0]


def sampled_tokens(backend: LlamaCppBackend, messages: list[Message], seed: int) -> tuple[PromptLookup, str]:
    """Drafted sampled generation of up to 60 tokens: the lookup (it holds the counts), the text."""
    llm = backend._llm
    llm.reset()
    prompt = backend.render(messages)
    llm.set_seed(seed)
    lookup = PromptLookup(prompt, backend._batch_costs)
    tokens = llm.generate(prompt, temp=0.2, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
    out = []
    for token in drafted(llm, tokens, 60, lookup, backend._batch_costs):
        if token == llm.token_eos():
            break
        out.append(token)
        if len(out) >= 60:
            break
    assert "eval" not in llm.__dict__  # the shadowed eval is gone again
    assert lookup.ids[len(prompt) :] == out[: len(lookup.ids) - len(prompt)]  # it saw every token
    return lookup, llm.detokenize(out).decode("utf-8", "replace")


def test_sampled_answer_accepts_drafts_from_the_prompt(tmp_path):
    backend = LlamaCppBackend(Settings(data_dir=tmp_path, n_ctx=2048))
    try:
        # which tokens a sampled answer draws, and so how much of the passage it copies, moves with
        # the seed and the learned batch costs: three seeds, at least one of them copying
        quotes = [sampled_tokens(backend, QUOTE, seed=seed) for seed in (6, 7, 8)]
        assert max(quoted.accepted_total for quoted, _ in quotes) > 10  # tokens from verified drafts
        assert all(quoted.accepted_total <= quoted.proposed_total for quoted, _ in quotes)
        assert any("lighthouse" in text for _, text in quotes)
        free, _ = sampled_tokens(
            backend, [Message(role="user", content="Tell me a story about a cat.")], seed=7
        )
        assert free.proposed_total <= 10  # no passage to copy: (almost) no drafts are paid for
        # the backend's own path drafts for sampled turns and still answers
        config = GenerationConfig(temperature=0.2, max_tokens=40, seed=3)
        text = "".join(c.text for c in backend.stream_chat(QUOTE, config))
        assert text.strip()
    finally:
        backend.close()


def test_drafted_answers_keep_their_logprobs_and_next_token_data(tmp_path):
    """Each drafted token's logits are read at its own position in the batch: with top-k 40 the
    drawn token is always among that position's 40 best (the batch's last row would not say so)."""
    from engine.studio.trace import TokenTrace

    backend = LlamaCppBackend(Settings(data_dir=tmp_path, n_ctx=2048, prompt_lookup=True))
    try:
        config = GenerationConfig(temperature=0.2, repeat_penalty=1.0, top_k=40, max_tokens=60, seed=7)
        trace = TokenTrace()
        chunks = list(backend.stream_chat(QUOTE, config, trace=trace, logprobs=3))
        assert set(backend._batch_costs._seen) - {1}  # draft batches were evaluated
        assert len(trace) == chunks[-1].usage.completion_tokens > 30
        for token, top in zip(trace.ids, trace.top_ids, strict=True):
            assert token in top.tolist()
        scored = [lp for c in chunks for lp in c.logprobs or ()]
        assert len(scored) == len(trace)
        for lp, traced in zip(scored, trace.logprobs, strict=True):
            assert abs(lp.logprob - traced) < 1e-3  # the API's logprobs read the same row
    finally:
        backend.close()


def test_first_turn_during_warm_up_waits_and_answers(tmp_path):
    services = build(Settings(data_dir=tmp_path / "d", n_ctx=2048), warm_up=True)
    try:
        assert services.warm_up is not None
        still_running = services.warm_up.running  # the embedder alone takes seconds to load
        done, text = run_turn(services, "Hello! Who are you?", GREEDY)
        assert done.finish_reason in ("stop", "length") and text
        assert still_running
        assert services.warm_up.wait(timeout=300)
        assert services.warm_up.errors == []
        assert {"model", "embedder", "memory", "fast embedder"} <= set(services.warm_up.done_steps)
        assert services.embedder._model is not None  # loaded by the warm-up or the turn, once
        # nothing is exported at start-up (the first answers keep the cores); an existing export
        # is opened by this step (tests/test_embed_int8.py)
        assert services.embedder.onnx_state == "new"
    finally:
        services.close()


def test_warm_up_leaves_the_new_chat_prefix_cached_for_the_first_turn(tmp_path):
    """The first turn of a fresh process reuses the system prompt and core memory like the second."""
    services = build(Settings(data_dir=tmp_path / "d", n_ctx=2048), warm_up=True)
    try:
        assert services.warm_up is not None and services.warm_up.wait(timeout=300)
        assert services.warm_up.errors == []
        first, _ = run_turn(services, "Hello! What can you do?", GREEDY)
        second, _ = run_turn(services, "Name three colours.", GREEDY)
        assert second.usage.cached_tokens > 0  # new chats share this prefix
        assert first.usage.cached_tokens == second.usage.cached_tokens
        assert len(services.conversations.list()) == 2  # the warm-up saved no conversation
    finally:
        services.close()


def test_draft_model_keeps_greedy_answers_and_drafts_sampled_ones(tmp_path):
    """The bundled model as its own draft: greedy answers never change; sampled ones accept drafts."""
    from engine.backends.gguf_files import bundled_model_path

    bundled = str(bundled_model_path())
    config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=60)
    answers = []
    for draft in (bundled, None):
        # one thread each: two models' thread pools spin against each other on a busy machine
        settings = Settings(data_dir=tmp_path / str(bool(draft)), n_ctx=2048, n_threads=1, n_threads_batch=1)
        backend = LlamaCppBackend(settings.replace(draft_model=draft))
        try:
            answers.append("".join(c.text for c in backend.stream_chat(QUOTE, config)))
            if draft is None:
                continue
            assert backend._draft is not None
            prompt = backend.render(QUOTE)
            session = backend._draft.session(prompt)
            backend._llm.set_seed(7)
            tokens = backend._llm.generate(
                prompt, temp=0.2, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0
            )
            out = []
            for token in drafted(backend._llm, tokens, 60, session):
                out.append(token)
                if len(out) >= 60:
                    break
            assert session.accepted_total > 10  # the draft guessed what the model then sampled
            sampled = "".join(
                c.text for c in backend.stream_chat(QUOTE, GenerationConfig(temperature=0.3, max_tokens=30))
            )
            assert sampled.strip()
        finally:
            backend.close()
    assert answers[0] == answers[1] and "lighthouse" in answers[0]


def test_draft_model_flag_reaches_the_settings():
    from cli import global_parser, settings_from

    args = global_parser().parse_args(["--draft-model", "small.gguf", "chat", "hi"])
    assert settings_from(args).draft_model == "small.gguf"
