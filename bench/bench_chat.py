"""Foundation benchmark: prints ratios measured side by side in one run, on the bundled model.

  python bench/bench_chat.py [--runs 3]

1. tokens/s through Hearth's engine / tokens/s of raw llama-cpp-python
   create_chat_completion(stream=True), same model file, prompt and greedy settings (target >= 0.97)
2. per-token latency around token 400 / around token 10 of one long answer (target <= 1.10),
   for Hearth and for raw llama-cpp-python streaming
3. time to first token of turn 8 with the KV prefix reused / with the cache cleared (target <= 0.2)
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
from engine.backends.llama_cpp import bundled_model_path  # noqa: E402
from engine.types import Done, Message, TextDelta  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
SYSTEM = "You are a helpful assistant."


def hearth_stream(backend, max_tokens: int) -> list[float]:
    """Arrival time of each streamed piece (one per token here: no stop strings)."""
    backend.clear_cache()
    config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=max_tokens)
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content=PROMPT)]
    stamps = []
    for chunk in backend.stream_chat(messages, config):
        if chunk.text:
            stamps.append(time.perf_counter())
    return stamps


def raw_stream(llm, max_tokens: int) -> list[float]:
    llm.reset()
    stamps = []
    for part in llm.create_chat_completion(
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
        temperature=0.0,
        repeat_penalty=1.0,
        max_tokens=max_tokens,
        stream=True,
    ):
        if part["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return stamps


def rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def gap_around(stamps: list[float], index: int, width: int = 10) -> float:
    gaps = [
        b - a
        for a, b in zip(stamps[index - width : index + width], stamps[index - width + 1 : index + width + 1])
    ]
    return statistics.median(gaps)


def throughput(backend, llm, runs: int) -> None:
    ours, raw = [], []
    for _ in range(runs):  # interleaved so machine noise hits both alike
        ours.append(rate(hearth_stream(backend, 200)))
        raw.append(rate(raw_stream(llm, 200)))
    o, r = statistics.median(ours), statistics.median(raw)
    print(
        f"1. tokens/s  hearth {o:7.1f}   raw llama-cpp-python {r:7.1f}   ratio {o / r:.3f}   (target >= 0.97)"
    )


def flatness(backend, llm, runs: int) -> None:
    ours_r, raw_r, own_r = [], [], []
    for _ in range(runs):
        ours, raw = hearth_stream(backend, 460), raw_stream(llm, 460)
        if min(len(ours), len(raw)) < 420:
            print(f"2. answer too short for the latency test ({len(ours)} / {len(raw)} tokens)")
            return
        ours_r.append(gap_around(ours, 400) / gap_around(ours, 10))
        raw_r.append(gap_around(raw, 400) / gap_around(raw, 10))
        own_r.append(
            (gap_around(ours, 400) / gap_around(raw, 400)) / (gap_around(ours, 10) / gap_around(raw, 10))
        )
    o, r, own = (statistics.median(x) for x in (ours_r, raw_r, own_r))
    print(
        f"2. latency token~400 / token~10   hearth {o:.3f}   raw llama-cpp-python {r:.3f}   (target <= 1.10)\n"
        f"   growth of Hearth's own per-token cost (hearth/raw at 400 over hearth/raw at 10): {own:.3f}; the rest\n"
        "   is the model attending over a longer context, the same with or without Hearth"
    )


def prefix_reuse(services) -> None:
    chat = services.chat
    config = GenerationConfig(temperature=0.0, max_tokens=120)
    conversation_id = None
    topics = ["rivers", "mountains", "deserts", "forests", "oceans", "volcanoes", "glaciers"]
    for topic in topics:
        for event in chat.stream_turn(conversation_id, f"Tell me about {topic}.", config):
            if isinstance(event, Done):
                conversation_id = event.conversation_id

    def turn8(clear: bool) -> tuple[float, int]:
        if clear:
            services.models.backend.clear_cache()
        start, first = time.perf_counter(), None
        for event in chat.stream_turn(conversation_id, "Which of these is the coldest?", config, mode="edit"):
            if isinstance(event, TextDelta) and first is None:
                first = time.perf_counter()
            if isinstance(event, Done):
                return first - start, event.usage.prompt_tokens
        raise RuntimeError("no answer")

    for event in chat.stream_turn(conversation_id, "Which of these is the coldest?", config):
        pass  # turn 8 exists; "edit" re-asks it with the same history each time
    warm = statistics.median(turn8(clear=False)[0] for _ in range(3))
    cold_runs = [turn8(clear=True) for _ in range(3)]
    cold = statistics.median(t for t, _ in cold_runs)
    print(
        f"3. turn-8 time to first token   prefix reused {warm * 1000:6.0f} ms   cache cleared {cold * 1000:6.0f} ms"
        f"   ratio {warm / cold:.3f}   (prompt {cold_runs[0][1]} tokens; target <= 0.2)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        services = build(Settings(data_dir=Path(tmp), n_ctx=4096))
        backend = services.models.backend
        llm = llama_cpp.Llama(model_path=str(bundled_model_path()), n_ctx=4096, n_batch=512, verbose=False)
        print(f"model: {backend.info.summary()}")
        throughput(backend, llm, args.runs)
        flatness(backend, llm, args.runs)
        prefix_reuse(services)
        services.close()


if __name__ == "__main__":
    main()
