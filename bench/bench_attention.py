"""Flash attention on this CPU, with and without (what attention_check decides from), side by side.

  python bench/bench_attention.py [--contexts 30,250,1000,2000] [--threads N] [--decodes 48]

On the bundled model, with the kernels Hearth loads it with (amx_check), one llama.cpp context
with flash attention and one without, in this process:

1. one-token decodes per second at each number of tokens of context, at N threads (Hearth's
   generation threads by default) and at 1 (a page turn beside a browser on 2 cores); the two
   kernels are timed in turns, best of 3 rounds; printed with the ratio without / with
2. prompt evaluation, tokens per second, of 1,000 tokens in batches of 63 and of 512
3. without flash attention: whether a 700-token prompt cut into batches in several ways (every
   batch of two or more tokens) gives the same last logits to the bit, at N threads and at 1;
   and whether one-token decodes past 500 tokens give the same logits at N threads and at 1

Ratios only compare kernels measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.backends import amx_check  # noqa: E402
from engine.backends.chunk_rule import ChunkRule  # noqa: E402
from engine.backends.gguf_files import bundled_model_path  # noqa: E402
from engine.backends.kv_reuse import evaluate  # noqa: E402
from engine.backends.llama_load import _agree  # noqa: E402
from engine.backends.threads import plan_threads  # noqa: E402

TEXT = (ROOT / "README.md").read_text(encoding="utf-8")
CUTS = [[512, 188], [300, 400], [2, 510, 188], [63] * 11 + [7], [100, 2, 512, 86], [512, 186, 2]]


def load(llama_cpp, flash: bool, threads: int, n_ctx: int = 4096):
    return llama_cpp.Llama(
        model_path=str(bundled_model_path()),
        n_ctx=n_ctx,
        n_batch=512,
        flash_attn=flash,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )


def fresh(llm) -> None:
    llm.reset()
    llm._ctx.kv_cache_clear()


def last_logits(llama_cpp, llm):
    import numpy as np

    logits = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(logits, shape=(llm.n_vocab(),)).copy()


def decode_rates(llama_cpp, tokens: list[int], contexts: list[int], threads: int, decodes: int) -> None:
    models = {flash: load(llama_cpp, flash, threads) for flash in (True, False)}
    try:
        for context in contexts:
            best = dict.fromkeys(models, math.inf)
            for llm in models.values():
                fresh(llm)
                llm.eval(tokens[:context])
            for _ in range(3):
                for flash, llm in models.items():
                    llm._ctx.kv_cache_seq_rm(0, context, -1)  # back to the prompt
                    llm.n_tokens = context
                    start = time.perf_counter()
                    for token in tokens[context : context + decodes]:
                        llm.eval([token])
                    best[flash] = min(best[flash], (time.perf_counter() - start) / decodes)
            on, off = 1 / best[True], 1 / best[False]
            print(
                f"1. decode, {threads} thread(s), {context:5d} tokens of context: with flash attention"
                f" {on:6.1f} tok/s  without {off:6.1f}  without / with {off / on:.2f}",
                flush=True,
            )
    finally:
        for llm in models.values():
            llm.close()


def prefill_rates(llama_cpp, tokens: list[int], threads: int) -> None:
    for flash in (True, False):
        llm = load(llama_cpp, flash, threads)
        try:
            rates = []
            for size in (63, 512):
                best = math.inf
                for _ in range(2):
                    fresh(llm)
                    start = time.perf_counter()
                    evaluate(llm, tokens, 0, 1000, ChunkRule(size, min_batch=2))  # as the engine does
                    best = min(best, time.perf_counter() - start)
                rates.append(f"batches of {size}: {1000 / best:6.1f} tok/s")
            print(
                f"2. prompt, {threads} thread(s), flash attention {'on ' if flash else 'off'}: "
                + "  ".join(rates)
            )
        finally:
            llm.close()


def exactness(llama_cpp, tokens: list[int], threads: int) -> None:
    import numpy as np

    for n in sorted({threads, 1}, reverse=True):
        llm = load(llama_cpp, False, n, n_ctx=2048)
        try:  # the load-time probe's own check (probe_rule), over longer cuts
            same = _agree(llama_cpp, llm, tokens[:700], CUTS, 2)
            print(
                f"3. without flash attention, {n} thread(s): {len(CUTS)} cuts of a 700-token prompt agree: {same}"
            )
        finally:
            llm.close()
    runs = []
    for n in sorted({threads, 1}, reverse=True):
        llm = load(llama_cpp, False, n, n_ctx=2048)
        try:
            llm.eval(tokens[:500])
            steps = []
            for token in tokens[500:524]:
                llm.eval([token])
                steps.append(last_logits(llama_cpp, llm))
            runs.append(np.array(steps))
        finally:
            llm.close()
    if len(runs) == 2:
        same = bool(np.array_equal(runs[0], runs[1]))
        print(
            f"3. without flash attention, decodes past 500 tokens at {threads} and 1 thread(s) agree: {same}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="30,250,1000,2000")
    parser.add_argument("--threads", type=int, default=None, help="default: Hearth's generation threads")
    parser.add_argument("--decodes", type=int, default=48, help="one-token decodes per timed round")
    args = parser.parse_args()
    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:  # the AMX verdict, for this run only
        amx_check.guard(llama_cpp, bundled_model_path(), Path(tmp))
    threads = args.threads or plan_threads().generation
    contexts = [int(c) for c in args.contexts.split(",")]
    tokens = llama_cpp.Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False).tokenize(
        TEXT.encode(), add_bos=True, special=False
    )
    if len(tokens) < max(contexts) + 3 * args.decodes + 8:
        raise SystemExit(f"the README gives {len(tokens)} tokens: ask for less context")
    for n in sorted({threads, 1}, reverse=True):
        decode_rates(llama_cpp, tokens, contexts, n, args.decodes)
    prefill_rates(llama_cpp, tokens, threads)
    exactness(llama_cpp, tokens, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
