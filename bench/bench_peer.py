"""The peer (issue 11, benchmark 6): Hearth against llama.cpp's own server, out of the box.

  bench/build_llama_server.sh                      # once: builds llama-server (minutes)
  python bench/bench_peer.py [--server PATH] [--runs 3] [--max-tokens 128]

Same bundled GGUF, same prompts, same generation and batch threads (Hearth's defaults for
this machine, passed to llama-server as -t/-tb), same context size. ``--sampling greedy``:
temperature 0 on both sides; ``defaults``: each side's own default sampling, out of the box
(Hearth: temperature 0.7, repeat penalty 1.1, drafting only with --prompt-lookup; llama-server:
temperature 0.8, no drafting); ``both`` (the default) runs greedy, then defaults:

- Hearth engine: the in-process backend's stream_chat (what the page and the CLI use)
- Hearth API: /v1/chat/completions on Hearth's server, streamed with the openai client
- llama-server: its /v1/chat/completions, streamed with the same client

Prompts: free chat, and grounded answers (quote / summarise a passage, rewrite a code
block). Each run puts a different number in front of the question, so neither side answers
from a cached prompt beyond the shared system prompt (both reuse a cached prefix out of the
box). Tokens/s counts from the first token to the last; TTFT from the request. Runs are
interleaved; medians. Hearth / llama-server ratios are printed: tokens/s (higher is better,
targets >= 0.9 free chat, >= 1.0 grounded) and TTFT (lower is better).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from api_support import API_KEY  # noqa: E402
from bench_api import Sample, api_timing, backend_timing  # noqa: E402
from bench_speed import FREE, GROUNDED, pause_between_runs  # noqa: E402
from peer_server import llama_server, same_kernels, server_binary  # noqa: E402
from serving import served  # noqa: E402

from engine import GenerationConfig, Settings, build  # noqa: E402
from engine.backends.gguf_files import bundled_model_path  # noqa: E402
from engine.settings import auto_on_off_word  # noqa: E402


def engine_run(backend, prompt: str, max_tokens: int, greedy: bool) -> Sample:
    config = GenerationConfig(max_tokens=max_tokens)
    return backend_timing(backend, prompt, config.replace(temperature=0.0) if greedy else config)


@contextmanager
def both_servers(
    tmp: Path,
    threads: int | None,
    server: str | None,
    *,
    prompt_lookup: bool = False,
    flash_attn: bool | None = None,
) -> Iterator[dict]:
    """Hearth (its engine in this process, and its API as its own process) and llama-server
    on the same GGUF, threads and context, out of the box otherwise. Yields a dict:
    backend, hearth / peer (openai clients), hearth_model / peer_model."""
    import openai

    # None: Hearth's default for this machine, given to both
    settings = Settings(
        data_dir=tmp / "data",
        memory=False,
        n_threads=threads,
        n_threads_batch=threads,
        prompt_lookup=prompt_lookup,
        flash_attn=flash_attn,
    )
    services = build(settings)
    try:
        backend = services.models.backend
        info = backend.info
        print(
            f"threads {info.n_threads} generation / {info.n_threads_batch} batch,"
            f" n_ctx {info.n_ctx}, model {Path(info.path).name}, flash attention {info.attention_note}"
        )
        binary = server_binary(server)
        peer_server = llama_server(
            binary,
            bundled_model_path(),
            info.n_threads,
            info.n_threads_batch,
            info.n_ctx,
            extra=same_kernels(info),
        )
        # Hearth's API as a user runs it: its own process (a client in the same process would
        # share the GIL with the server's per-token work, which no real client does)
        env = {"HEARTH_API_KEY": API_KEY, "HEARTH_MEMORY": "0", "HEARTH_N_CTX": str(info.n_ctx)}
        env |= {"HEARTH_N_THREADS": str(info.n_threads), "HEARTH_N_THREADS_BATCH": str(info.n_threads_batch)}
        env["HEARTH_PROMPT_LOOKUP"] = "1" if prompt_lookup else "0"
        env["HEARTH_FLASH_ATTN"] = auto_on_off_word(flash_attn)
        with (
            served(tmp / "served", env=env) as hearth_url,
            openai.OpenAI(base_url=f"{hearth_url}/v1", api_key=API_KEY) as hearth,
            peer_server as peer_url,
            openai.OpenAI(base_url=f"{peer_url}/v1", api_key="none") as peer,
        ):
            yield {
                "backend": backend,
                "hearth": hearth,
                "hearth_model": hearth.models.list().data[0].id,
                "peer": peer,
                "peer_model": peer.models.list().data[0].id,
            }
    finally:
        services.close()


def compare(args: argparse.Namespace) -> None:
    lookup = args.prompt_lookup
    with (
        tempfile.TemporaryDirectory() as tmp,
        both_servers(
            Path(tmp), args.n_threads, args.server, prompt_lookup=lookup, flash_attn=args.flash_attn
        ) as s,
    ):
        for greedy in [g for g in (True, False) if args.sampling in ("both", SAMPLING[g])]:
            temperature = 0.0 if greedy else None  # None: the server's own default
            paths = {
                "engine": lambda p, g=greedy: engine_run(s["backend"], p, args.max_tokens, g),
                "api": lambda p, t=temperature: api_timing(
                    s["hearth"], s["hearth_model"], p, args.max_tokens, t
                ),
                "peer": lambda p, t=temperature: api_timing(
                    s["peer"], s["peer_model"], p, args.max_tokens, t
                ),
            }
            for run in paths.values():  # untimed: first requests set up buffers on both sides
                run("Hello!")
            for label, prompts in (("free chat", FREE), ("grounded", GROUNDED)):
                report(f"{label} ({SAMPLING[greedy]})", measure(paths, prompts, args.runs))


#: --sampling's words for greedy (True) and each side's default sampling (False)
SAMPLING = {True: "greedy", False: "defaults"}


def measure(paths, prompts: list[str], runs: int) -> dict[str, list[Sample]]:
    results: dict[str, list[Sample]] = {name: [] for name in paths}
    for i in range(runs):
        for prompt in prompts:
            for name, run in paths.items():  # interleaved: noise hits every path alike
                pause_between_runs()
                results[name].append(run(f"Request {i + 1}. {prompt}"))
    return results


def report(label: str, results: dict[str, list[Sample]]) -> None:
    ttft = {name: statistics.median(s[0] for s in samples) for name, samples in results.items()}
    rate = {name: statistics.median(s[1] for s in samples) for name, samples in results.items()}
    target = ">= 1.0" if label.startswith("grounded") else ">= 0.9"
    r, t = rate, {name: value * 1e3 for name, value in ttft.items()}
    print(
        f"{label}: tokens/s  engine {r['engine']:6.1f}  API {r['api']:6.1f}  llama-server {r['peer']:6.1f}"
        f"  | Hearth/peer: engine {r['engine'] / r['peer']:.3f}  API {r['api'] / r['peer']:.3f}"
        f"  (target {target})"
    )
    print(
        f"{label}: TTFT ms   engine {t['engine']:6.0f}  API {t['api']:6.0f}  llama-server {t['peer']:6.0f}"
        f"  | Hearth/peer: engine {t['engine'] / t['peer']:.3f}  API {t['api'] / t['peer']:.3f}"
        "  (lower is better)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=None, help="llama-server binary (default: build_llama_server.sh)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-threads", type=int, default=None, help="generation and batch threads for both")
    parser.add_argument("--prompt-lookup", action="store_true", help="Hearth with prompt-lookup drafting")
    parser.add_argument(
        "--flash-attn",
        type=lambda t: {"auto": None, "on": True, "off": False}[t],
        default=None,
        help="Hearth's flash attention: auto (its default), on or off; llama-server keeps its own default",
    )
    parser.add_argument(
        "--sampling",
        choices=("greedy", "defaults", "both"),
        default="both",
        help="see the module's docstring",
    )
    compare(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
