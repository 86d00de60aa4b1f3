"""Remote-engine benchmark: prints ratios measured side by side in one run.

  python bench/bench_remote.py [--url http://HOST:PORT] [--runs 5] [--max-tokens 96]

Without --url it starts llama-cpp-python's OpenAI-compatible server on the bundled model
(a random loopback port); with --url it measures an existing server (vLLM, llama.cpp ...).

1. Remote overhead: tokens/s of Hearth's page-level turn (services.chat.stream_turn through
   --backend-url) / tokens/s of a direct httpx client of the same server, same messages and
   greedy settings, runs interleaved (target >= 0.95). Time to first token is printed too:
   Hearth's includes its own work before the request (memory, retrieval, token counts).
2. Concurrency: aggregate tokens/s with 1, 2, 4, 8 clients streaming at once through the
   remote backend, and the same through the in-process engine (which queues: one at a time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from remote_servers import start_llama_server  # noqa: E402

from engine import GenerationConfig, Settings, build  # noqa: E402
from engine.types import Done, Message  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
SYSTEM = "You are a helpful assistant."


def direct_stream(client: httpx.Client, body: dict) -> tuple[float, float]:
    """(ttft, tokens/s) of one plain httpx client request, timed as Hearth times a turn:
    from the request to the first text, and from the first text to the end of the stream."""
    stamps: list[float] = []
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                choice = json.loads(line[5:])["choices"][0]
                if choice["delta"].get("content"):
                    stamps.append(time.perf_counter())
    ended = time.perf_counter()
    return stamps[0] - started, (len(stamps) - 1) / (ended - stamps[0])


def recorded_body(services, config: GenerationConfig) -> dict:
    """The exact request body Hearth sends for this turn, so the direct client sends the same."""
    from engine.backends.server_kinds import request_body

    backend, seen = services.models.backend, []
    inner = backend.stream_chat

    def recording(messages, config, **kwargs):
        seen.append(list(messages))
        return inner(messages, config, **kwargs)

    backend.stream_chat = recording  # instance attribute: this benchmark's services only
    try:
        hearth_turn(services, config)
    finally:
        del backend.stream_chat
    return request_body(
        backend.kind, model=backend.facts.model, messages=seen[0], config=config, max_tokens=config.max_tokens
    )


def hearth_turn(services, config: GenerationConfig) -> tuple[float, float, int]:
    """(ttft, tokens/s, tokens) of one page-level turn, as its status line reports them."""
    done = next(e for e in services.chat.stream_turn(None, PROMPT, config) if isinstance(e, Done))
    return done.timings.ttft_s, done.timings.tokens_per_s, done.usage.completion_tokens


def overhead(services, url: str, runs: int, config: GenerationConfig) -> None:
    body = recorded_body(services, config)  # also warms both paths
    # one persistent client, as Hearth's backend keeps one (a new client per request costs TTFT)
    client = httpx.Client(base_url=url, timeout=120)
    direct_stream(client, body)
    hearth, direct = [], []
    for i in range(runs):  # pairs in alternating order (ABBA), so drifting load hits both alike
        for side in ("hearth", "direct") if i % 2 == 0 else ("direct", "hearth"):
            if side == "hearth":
                ttft, tps, tokens = hearth_turn(services, config)
                hearth.append((ttft, tps))
            else:
                direct.append(direct_stream(client, body))
    client.close()
    h = statistics.median(tps for _, tps in hearth)
    d = statistics.median(tps for _, tps in direct)
    pairs = [a[1] / b[1] for a, b in zip(hearth, direct)]
    print(f"1. remote overhead ({runs} pairs, {tokens} tokens each, medians)")
    for name, runs_ in (("Hearth turn via --backend-url", hearth), ("direct httpx client", direct)):
        ttft = statistics.median(t for t, _ in runs_) * 1000
        print(f"   {name:<30} {statistics.median(r for _, r in runs_):7.1f} tok/s   TTFT {ttft:6.0f} ms")
    print(
        f"   tokens/s ratio Hearth/direct: {h / d:.3f} (of medians), {statistics.median(pairs):.3f} "
        "(median of pairs)  (target >= 0.95)"
    )
    print(f"   per-pair ratios: {', '.join(f'{r:.2f}' for r in pairs)}")


def aggregate(backend, clients: int, config: GenerationConfig) -> float:
    """Total tokens/s of ``clients`` streams at once through one backend."""
    counts = [0] * clients
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content=PROMPT)]

    def run(i: int) -> None:
        for chunk in backend.stream_chat(messages, config):
            if chunk.usage is not None:
                counts[i] = chunk.usage.completion_tokens

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def concurrency(remote_backend, local_backend, config: GenerationConfig) -> None:
    print(f"2. concurrency: aggregate tokens/s ({config.max_tokens} tokens per client)")
    print("   clients   remote server   in-process engine (queues)")
    for backend in (remote_backend, local_backend):  # warm: page in the model, fill caches
        if backend is not None:
            aggregate(backend, 1, config.replace(max_tokens=4))
    for clients in (1, 2, 4, 8):
        remote = aggregate(remote_backend, clients, config)
        local = aggregate(local_backend, clients, config) if local_backend is not None else float("nan")
        print(f"   {clients:>7}   {remote:13.1f}   {local:13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", default=None, help="an existing OpenAI-compatible server (default: start one)"
    )
    parser.add_argument("--key", default=None, help="its API key")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--no-local", action="store_true", help="skip the in-process engine in part 2")
    args = parser.parse_args()
    config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.url else start_llama_server(Path(tmp))
        url = args.url or server.url
        try:
            settings = Settings(
                data_dir=Path(tmp) / "data",
                backend_url=url,
                backend_key=args.key,
                backend_n_ctx=2048,
                system_prompt=SYSTEM,
                memory=False,
            )
            services = build(settings)
            if services.warnings:
                raise SystemExit(services.warnings[0])
            print(f"server: {url} ({services.models.backend.kind.label}), model {services.models.info.name}")
            overhead(services, url, args.runs, config)
            local = None
            if not args.no_local:
                from engine.backends.llama_cpp import LlamaCppBackend

                local = LlamaCppBackend(Settings(data_dir=Path(tmp) / "local", n_ctx=2048))
            concurrency(services.models.backend, local, config)
            if local is not None:
                local.close()
            services.close()
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
