"""Sampling-studio benchmark on the bundled model: prints what the next-token view costs.

  python bench/bench_studio.py [--tokens 500] [--runs 20]

1. ms to open the next-token view for a token in the middle of a long answer: load the answer's
   trace from SQLite, spell its tokens with the loaded model, compute every sampler stage
   (what the page does on "Inspect" then a click), and ms to recompute after a slider moves
2. bytes stored per answer token (the trace row in SQLite / completion tokens)
3. generation speed with the trace recorded / without it, same prompt, greedy, side by side
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import GenerationConfig, Settings, build  # noqa: E402
from engine.studio.trace import TokenTrace  # noqa: E402
from engine.types import Done, Message  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def long_answer(services, n_tokens: int) -> Done:
    config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=n_tokens)
    done = None
    for event in services.chat.stream_turn(None, PROMPT, config):
        if isinstance(event, Done):
            done = event
    assert done is not None
    return done


def time_view(services, message_id: str, runs: int) -> tuple[float, float, int]:
    config = GenerationConfig.from_values(services.conversations.message(message_id).config or {})
    opens, moves = [], []
    n = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        tokens = services.studio.answer_tokens(message_id, config)
        n = len(tokens.trace)
        view = services.studio.position(tokens, n // 2)
        ids = sorted({t for s in view.stages for t, _ in s.kept[:12]})
        services.studio.token_pieces(ids)
        opens.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        services.studio.position(tokens, n // 2, config.replace(top_k=5, temperature=1.3))
        moves.append(time.perf_counter() - t1)
    return statistics.median(opens) * 1000, statistics.median(moves) * 1000, n


def speed(backend, n_tokens: int, traced: bool) -> float:
    backend.clear_cache()
    config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=n_tokens)
    messages = [Message(role="user", content=PROMPT)]
    trace = TokenTrace() if traced else None
    t0, produced = time.perf_counter(), 0
    for chunk in backend.stream_chat(messages, config, trace=trace):
        if chunk.usage is not None:
            produced = chunk.usage.completion_tokens
    return produced / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        services = build(Settings(data_dir=Path(tmp), n_ctx=2048, memory=False))
        try:
            done = long_answer(services, args.tokens)
            open_ms, move_ms, n = time_view(services, done.message_id, args.runs)
            stored = services.studio.store.trace_bytes(done.message_id)
            print(f"answer: {n} tokens ({done.usage.completion_tokens} completion tokens)")
            print(f"open the next-token view at token {n // 2}: {open_ms:.1f} ms (median of {args.runs})")
            print(f"recompute after a slider moves: {move_ms:.2f} ms")
            print(f"stored: {stored} bytes = {stored / n:.0f} bytes per token")
            backend = services.models.backend
            pairs = [(speed(backend, 200, False), speed(backend, 200, True)) for _ in range(3)]
            plain = statistics.median(p for p, _ in pairs)
            traced = statistics.median(t for _, t in pairs)
            print(
                f"generation: {plain:.1f} tok/s plain, {traced:.1f} tok/s with the trace: ratio {traced / plain:.3f}"
            )
        finally:
            services.close()


if __name__ == "__main__":
    main()
