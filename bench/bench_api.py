"""API benchmark: prints ratios measured side by side in one run, on the bundled model.

  python bench/bench_api.py [--runs 5] [--max-tokens 128] [--n-threads N]

1. streaming /v1/chat/completions through Hearth's API (a real uvicorn server on loopback,
   the official openai client) / the engine's backend.stream_chat directly: tokens/s
   (target >= 0.95) and time to first token (target <= 1.10). Same backend object, prompt
   and greedy settings; the KV cache is cleared before every run of either, runs interleaved.
2. aggregate tokens/s with 1, 2 and 4 concurrent API clients against the in-process engine,
   which runs one generation at a time (a lock queues the others).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from api_support import api_client  # noqa: E402
from stream_timing import SYSTEM, Sample, backend_timing  # noqa: E402

from engine import GenerationConfig, Settings, build  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def api_timing(
    client, model: str, prompt: str, max_tokens: int, temperature: float | None = 0.0, **options
) -> Sample:
    """One answer streamed from an OpenAI-compatible server with the openai client: greedy, or
    with the server's own default sampling when ``temperature`` is None."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    start, stamps, tokens, _ = stream_answer(client, model, messages, max_tokens, temperature, **options)
    return stamps[0] - start, (tokens - 1) / (stamps[-1] - stamps[0])


def stream_answer(
    client, model: str, messages: list[dict], max_tokens: int, temperature: float | None = 0.0, **options
) -> tuple[float, list[float], int, str]:
    """Stream one answer, greedy unless ``temperature`` says otherwise (None: the server's
    default): (start time, arrival time of each text chunk, tokens, text)."""
    start = time.perf_counter()
    stamps: list[float] = []
    parts: list[str] = []
    tokens = 0
    if temperature is not None:
        options["temperature"] = temperature
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
        **options,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    tokens = tokens or len(stamps)  # a server without usage in streams: one chunk per token
    return start, stamps, tokens, "".join(parts)


def direct_run(backend, max_tokens: int) -> Sample:
    backend.clear_cache()
    return backend_timing(
        backend, PROMPT, GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=max_tokens)
    )


def api_run(client, model: str, backend, max_tokens: int) -> Sample:
    backend.clear_cache()
    return api_timing(client, model, PROMPT, max_tokens, extra_body={"repeat_penalty": 1.0})


def in_thread(fn, *args):
    """Run ``fn`` on a fresh thread, as the page (Gradio workers) and the API do.

    On this machine llama.cpp evaluates a prompt many times slower on the main thread than
    on any other under heavy load, which would flatter the API."""
    result = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)))
    thread.start()
    thread.join()
    return result[0]


def overhead(client, model: str, backend, runs: int, max_tokens: int) -> None:
    direct, api = [], []
    for _ in range(runs):  # interleaved, so machine noise hits both alike
        direct.append(in_thread(direct_run, backend, max_tokens))
        api.append(api_run(client, model, backend, max_tokens))
    d_ttft, d_rate = (statistics.median(x) for x in zip(*direct))
    a_ttft, a_rate = (statistics.median(x) for x in zip(*api))
    print(
        f"1. tokens/s   API {a_rate:7.1f}   engine {d_rate:7.1f}   ratio {a_rate / d_rate:.3f}   (target >= 0.95)"
    )
    print(
        f"   TTFT (ms)  API {a_ttft * 1e3:7.1f}   engine {d_ttft * 1e3:7.1f}   "
        f"ratio {a_ttft / d_ttft:.3f}   (target <= 1.10)"
    )


def concurrency(client, model: str, backend, max_tokens: int) -> None:
    print("2. concurrent API clients (in-process engine: one generation at a time, the rest queue)")
    for clients in (1, 2, 4):
        backend.clear_cache()
        counts: list[int] = []

        def call(i: int, counts: list[int] = counts) -> None:
            reply = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": f"{PROMPT} Call it part {i}."}],
                max_tokens=max_tokens,
                temperature=0.0,
                extra_body={"repeat_penalty": 1.0},
            )
            counts.append(reply.usage.completion_tokens)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        print(
            f"   {clients} client(s): {sum(counts)} tokens in {wall:6.2f} s = {sum(counts) / wall:7.1f} tokens/s "
            f"aggregate, {wall / clients:5.2f} s per call on average"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--n-threads",
        type=int,
        default=None,
        help="llama.cpp threads (1 steadies timings on a busy 2-core box)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        services = build(Settings(data_dir=Path(tmp) / "data", n_ctx=2048, n_threads=args.n_threads))
        try:
            backend = services.models.backend
            with api_client(services) as (client, model):
                api_run(client, model, backend, 8)  # warm up both paths once
                in_thread(direct_run, backend, 8)
                overhead(client, model, backend, args.runs, args.max_tokens)
                concurrency(client, model, backend, args.max_tokens // 2)
        finally:
            services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
