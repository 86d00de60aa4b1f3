"""GPU offload (issue 11): is Hearth's engine exact and fast with its layers on a GPU?

  python bench/bench_gpu.py [--server PATH] [--runs 3] [--max-tokens 128] [--skip ...]

Needs llama-cpp-python built with GPU offload (CMAKE_ARGS="-DGGML_CUDA=on" or Metal) and the
bundled model; ``--server``: a ``llama-server`` of the same llama.cpp revision, built with the
same GPU backend (bench/build_llama_server.sh builds a CPU one; add -DGGML_CUDA=ON for this).
Everything runs with every layer offloaded; each part prints its own lines:

- exact: a greedy answer must not depend on the KV cache. The same prompt fresh, cached, and
  as a follow-up turn over a cached prefix; a conversation switched away from and back
  (KV snapshot restored) against a fresh evaluation; a seeded sampled answer likewise. Prints
  the KV reuse rule the load-time probe picked on this device. Exit status 1 on a difference.
- speed: greedy tokens/s (first token to last) and TTFT of the same prompts, interleaved:
  raw llama-cpp-python (``Llama.generate``, no Hearth), Hearth's engine, and llama-server;
  ratios engine / raw and engine / llama-server, and engine on the GPU / the same engine
  on this machine's CPU (n_gpu_layers 0).
- switch: bench_speed's switch-back TTFT (an 8-turn conversation, another one, back), snapshots
  on / off, on the GPU.
- drafting: bench_speed's prompt-lookup tokens/s with / without on the GPU, where a batch of
  positions costs about what one does, and the batch costs Hearth learned there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_speed import FREE, GROUNDED, TOPICS, drafting, pause_between_runs  # noqa: E402
from peer_server import llama_server, same_kernels  # noqa: E402
from stream_timing import SYSTEM as TEXT_SYSTEM  # noqa: E402
from stream_timing import Sample, backend_timing  # noqa: E402

from engine import GenerationConfig, Settings  # noqa: E402
from engine.backends.gguf_files import bundled_model_path  # noqa: E402
from engine.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from engine.types import Message  # noqa: E402

SYSTEM = Message(role="system", content=TEXT_SYSTEM)


def gpu_settings(tmp: Path, **kw) -> Settings:
    return Settings(data_dir=tmp / "data", memory=False, n_gpu_layers=kw.pop("n_gpu_layers", -1), **kw)


def answer(backend, messages, config, cache_key=None) -> tuple[str, float, int]:
    """Text, TTFT and cached prompt tokens of one answer."""
    start, first, text, cached = time.perf_counter(), None, [], 0
    for chunk in backend.stream_chat([SYSTEM, *messages], config, cache_key=cache_key):
        if chunk.text and first is None:
            first = time.perf_counter()
        text.append(chunk.text)
        if chunk.usage:
            cached = chunk.usage.cached_tokens
    return "".join(text), (first or time.perf_counter()) - start, cached


def exact(tmp: Path, n_batch: int) -> bool:
    greedy = GenerationConfig(temperature=0.0, max_tokens=64)
    seeded = GenerationConfig(temperature=0.8, max_tokens=64, seed=5)
    backend = LlamaCppBackend(gpu_settings(tmp, n_batch=n_batch))
    info = backend.info
    print(f"exact: {info.summary()}; n_batch {n_batch}: KV reuse rule {backend._reuse.rule.name}")
    checks: dict[str, bool] = {}
    ask = [Message(role="user", content="Write three sentences about the sea.")]
    for name, config in (("greedy", greedy), ("seeded", seeded)):
        backend.clear_cache()
        fresh = answer(backend, ask, config)[0]
        checks[f"{name}: same prompt cached"] = answer(backend, ask, config)[0] == fresh
        turn = [*ask, Message(role="assistant", content=fresh), Message(role="user", content="Now a haiku.")]
        warm, _, cached = answer(backend, turn, config)
        backend.clear_cache()
        checks[f"{name}: follow-up over {cached} cached tokens"] = answer(backend, turn, config)[0] == warm
    # switch back: A's snapshot restored after B took the KV, against A evaluated from nothing
    a = [Message(role="user", content=f"Tell me about {TOPICS[0]}.")]
    for topic in TOPICS[1:4]:
        reply = answer(backend, a, greedy, cache_key="a")[0]
        a += [Message(role="assistant", content=reply), Message(role="user", content=f"And {topic}?")]
    answer(backend, [Message(role="user", content="A poem about the sea.")], greedy, cache_key="b")
    restored, _, cached = answer(backend, a, greedy, cache_key="a")
    backend.clear_cache()
    kv, backend._kv = backend._kv, None
    checks[f"greedy: switch-back, snapshot restored {cached} tokens"] = (
        answer(backend, a, greedy)[0] == restored
    )
    backend._kv = kv
    backend.close()
    for name, ok in checks.items():
        print(f"exact, n_batch {n_batch}: {name}: {'same' if ok else 'DIFFERENT'}")
    return all(checks.values())


def raw_timing(llm, llama_cpp, prompt_tokens: list[int], max_tokens: int) -> Sample:
    """llama-cpp-python alone: a fresh cache, Llama.generate greedy, no Hearth code."""
    llm.reset()
    llm._ctx.kv_cache_clear()
    start, stamps = time.perf_counter(), []
    for i, token in enumerate(llm.generate(prompt_tokens, top_k=1, temp=0.0, repeat_penalty=1.0)):
        if llama_cpp.llama_token_is_eog(llm._model.vocab, token) or i >= max_tokens:
            break
        stamps.append(time.perf_counter())
    return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0])


def server_timing(base: str, prompt: str, max_tokens: int) -> Sample:
    import httpx

    body = {
        "messages": [{"role": "system", "content": SYSTEM.content}, {"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
    }
    start, stamps = time.perf_counter(), []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {})
            if delta.get("content"):
                stamps.append(time.perf_counter())
    return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0])


def speed(tmp: Path, runs: int, max_tokens: int, server: str | None) -> None:
    gpu = LlamaCppBackend(gpu_settings(tmp))
    cpu = LlamaCppBackend(gpu_settings(tmp, n_gpu_layers=0, kv_snapshots=False))
    llama_cpp = gpu._llama_cpp
    raw = llama_cpp.Llama(
        str(bundled_model_path()), n_gpu_layers=-1, n_ctx=gpu.info.n_ctx, flash_attn=True, verbose=False
    )
    info, greedy = gpu.info, GenerationConfig(temperature=0.0, max_tokens=max_tokens)
    print(f"speed: {info.summary()}; the CPU engine: {cpu.info.summary()}")
    paths = {
        "raw": lambda p: raw_timing(
            raw, llama_cpp, gpu.render([SYSTEM, Message(role="user", content=p)]), max_tokens
        ),
        "engine": lambda p: backend_timing(gpu, p, greedy),
        "cpu": lambda p: backend_timing(cpu, p, greedy),
    }
    with ExitStack() as stack:
        stack.callback(raw.close)
        stack.callback(cpu.close)
        stack.callback(gpu.close)
        if server:
            peer = llama_server(
                Path(server),
                bundled_model_path(),
                info.n_threads,
                info.n_threads_batch,
                info.n_ctx,
                extra=["-ngl", "99", *same_kernels(info)],
            )
            base = stack.enter_context(peer)
            paths["peer"] = lambda p: server_timing(base, p, max_tokens)
        for run in paths.values():
            run("Hello!")  # untimed: buffers and kernels set up
        for label, prompts in (("free chat", FREE), ("grounded", GROUNDED)):
            results: dict[str, list[Sample]] = {name: [] for name in paths}
            for i in range(runs):
                for prompt in prompts:
                    for name, run in paths.items():
                        pause_between_runs()
                        results[name].append(run(f"Request {i + 1}. {prompt}"))
            rate = {n: statistics.median(s[1] for s in v) for n, v in results.items()}
            ttft = {n: statistics.median(s[0] for s in v) * 1e3 for n, v in results.items()}
            line = "  ".join(f"{n} {rate[n]:6.1f} tok/s {ttft[n]:5.1f} ms" for n in paths)
            print(f"speed, {label} (greedy): {line}")
            ratios = [f"engine/raw tokens/s {rate['engine'] / rate['raw']:.3f}"]
            ratios.append(f"GPU/CPU engine tokens/s {rate['engine'] / rate['cpu']:.2f}")
            if "peer" in paths:
                ratios.append(f"engine/llama-server tokens/s {rate['engine'] / rate['peer']:.3f}")
                ratios.append(f"TTFT {ttft['engine'] / ttft['peer']:.3f}")
            print(f"speed, {label}: " + ", ".join(ratios))


def switch(tmp: Path, runs: int) -> None:
    backend = LlamaCppBackend(gpu_settings(tmp))
    sampled = GenerationConfig(max_tokens=60)
    a = [Message(role="user", content=f"Tell me about {TOPICS[0]}, in detail.")]
    for topic in TOPICS[1:]:
        reply = answer(backend, a, GenerationConfig(max_tokens=110), cache_key="a")[0]
        a += [Message(role="assistant", content=reply), Message(role="user", content=f"And {topic}?")]
    b = [Message(role="user", content="Write a short poem about the sea.")]
    on, off = [], []
    for _ in range(runs):
        for keep, into in ((True, on), (False, off)):
            kv = backend._kv
            backend._kv = kv if keep else None
            answer(backend, b, sampled, cache_key="b")
            into.append(answer(backend, a, sampled, cache_key="a")[1])
            backend._kv = kv
    n = backend.count_prompt_tokens([SYSTEM, *a])
    backend.close()
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(
        f"switch: TTFT back to a {n}-token conversation: snapshots {m_on * 1e3:.1f} ms, off {m_off * 1e3:.1f} ms,"
        f" ratio {m_on / m_off:.3f} (target <= 0.15)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=None, help="a GPU llama-server binary of the same llama.cpp")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--skip", default="", help="comma-separated: exact,speed,switch,drafting")
    parser.add_argument("--n-batch", default="63,512", help="comma-separated n_batch values for 'exact'")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if "exact" not in skip:
            ok = all([exact(Path(tmp) / f"exact-{n}", int(n)) for n in args.n_batch.split(",")])
        if "speed" not in skip:
            speed(Path(tmp) / "speed", args.runs, args.max_tokens, args.server)
        if "switch" not in skip:
            switch(Path(tmp) / "switch", args.runs)
        if "drafting" not in skip:
            drafting(args.runs, settings=gpu_settings(Path(tmp) / "drafting", kv_snapshots=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
