"""Speed benchmark (issue 11): ratios measured side by side in one run, on the bundled model.

  python bench/bench_speed.py [--runs 2] [--skip cold,threads,...]

1. switch-back TTFT: conversation A (8 turns, ~1,000 tokens), then B, then A again:
   A's next turn with KV snapshots / without (target <= 0.15), and after a restart
   of the services (disk tier; target <= 0.25); sampled (default settings) and greedy turns
2. prompt-lookup drafting: tokens/s with / without on grounded answers (target >= 1.3)
   and on free chat (target >= 0.97); sampled answers (greedy answers never draft), at
   temperature 0.3 and at Hearth's defaults; also the drafts accepted / proposed and the
   ratio those drafts give at draft_policy's prior cost curve (measured on a quiet machine):
   on a busy machine the wall-clock ratios swing far more than drafting changes them
3. cold start: first-turn TTFT / second-turn TTFT of a fresh process, with and without the
   warm-up (target <= 1.2)
4. default threads tokens/s / --n-threads 1

Item 6 of the issue (llama.cpp's own llama-server built from the vendored source) is not
part of this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import GenerationConfig, Settings, build  # noqa: E402
from engine.backends import llama_generate  # noqa: E402
from engine.backends.draft_policy import prior_ratio  # noqa: E402
from engine.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from engine.backends.speculative import PromptLookup  # noqa: E402
from engine.types import Done, Message, TextDelta  # noqa: E402

SAMPLED = GenerationConfig(max_tokens=60)
GREEDY = GenerationConfig(temperature=0.0, max_tokens=60)
TOPICS = ["rivers", "mountains", "deserts", "forests", "oceans", "volcanoes", "glaciers", "islands"]


def ttft(services, conversation_id, text, config, mode="new") -> tuple[float, str, int]:
    start, first = time.perf_counter(), None
    for event in services.chat.stream_turn(conversation_id, text, config, mode=mode):
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter()
        if isinstance(event, Done):
            return (first or time.perf_counter()) - start, event.conversation_id, event.usage.prompt_tokens
    raise RuntimeError("no answer")


def switch_back(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), memory=False)
        services = build(settings)
        a = b = None
        for topic in TOPICS:
            _, a, _ = ttft(
                services, a, f"Tell me about {topic}, in detail.", GenerationConfig(max_tokens=110)
            )
        _, b, _ = ttft(services, b, "Write a short poem about the sea.", SAMPLED)
        _, a, n_prompt = ttft(services, a, "Which of these is the coldest?", SAMPLED)
        backend = services.models.backend
        results = {}
        for name, config in (("sampled", SAMPLED), ("greedy", GREEDY)):
            on, off = [], []
            for _ in range(runs):  # interleaved: noise hits both alike
                for keep, into in ((True, on), (False, off)):
                    kv = backend._kv
                    backend._kv = kv if keep else None  # snapshots off = this process without them
                    ttft(services, b, "Write a short poem about the sea.", config, mode="edit")
                    into.append(ttft(services, a, "Which of these is the coldest?", config, mode="edit")[0])
                    backend._kv = kv
            results[name] = (statistics.median(on), statistics.median(off))
        services.close()
        # restart: new services on the same data dir; the disk tier holds A
        restarted = []
        for _ in range(runs):
            services = build(settings)
            restarted.append(ttft(services, a, "Which of these is the coldest?", SAMPLED, mode="edit")[0])
            ttft(
                services, b, "Write a short poem about the sea.", SAMPLED, mode="edit"
            )  # A leaves the live KV
            services.close()
    for name, (on, off) in results.items():
        print(
            f"1. switch-back TTFT ({name})  snapshots {on * 1000:6.0f} ms  off {off * 1000:6.0f} ms  "
            f"ratio {on / off:.3f}  (prompt {n_prompt} tokens; target <= 0.15)"
        )
    r = statistics.median(restarted)
    off = results["sampled"][1]
    print(
        f"1. after restart (disk tier, sampled)  {r * 1000:6.0f} ms  vs off {off * 1000:6.0f} ms  "
        f"ratio {r / off:.3f}  (target <= 0.25)"
    )


PASSAGE = (
    "The lighthouse stood on a rock at the edge of the bay. Every night the keeper climbed ninety-nine "
    "steps to light the lamp, and every morning he wrote the weather in a small green book. In the "
    "winter of 1893 a storm broke the glass, and he kept the flame alive with his coat for six hours."
)
CODE = """def total(items):
    result = 0
    for item in items:
        if item.price > 0:
            result = result + item.price * item.quantity
    return result
"""
GROUNDED = [
    f"Quote the passage below word for word.\n\n{PASSAGE}",
    f"Summarise the passage below, reusing its own words.\n\n{PASSAGE}",
    f"Rewrite this Python function with the variable `result` renamed to `amount`:\n\n{CODE}",
]
FREE = ["Write a short story about a cat who learns to fly.", "What are good habits for sleeping well?"]


def pause_between_runs() -> None:
    """Before each timed run: llama.cpp's OpenMP threads spin-wait a while after their last work,
    and on a 2-core machine the previous run's spinning threads would slow the next one down."""
    time.sleep(1.0)


def rate(backend, prompt: str, config: GenerationConfig) -> float:
    pause_between_runs()
    backend.clear_cache()
    msgs = [
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content=prompt),
    ]
    stamps = [time.perf_counter() for c in backend.stream_chat(msgs, config) if c.text]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0


class CountedLookup(PromptLookup):
    """PromptLookup that keeps every instance, to report how many drafts were proposed/accepted."""

    made: list[PromptLookup] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompt_len, self.batch_cost, self.batches = len(self.ids), 0.0, 0
        CountedLookup.made.append(self)

    def propose(self, limit: int) -> list[int]:
        draft = super().propose(limit)
        if draft:
            self.batch_cost += prior_ratio(len(draft) + 1)
            self.batches += 1
        return draft


DRAFT_CONFIGS = (
    ("temperature 0.3", GenerationConfig(temperature=0.3, repeat_penalty=1.0, max_tokens=150, seed=11)),
    ("Hearth defaults", GenerationConfig(max_tokens=150, seed=11)),
)


def drafting(runs: int, settings: Settings | None = None) -> None:
    """``settings``: the model's (default: Hearth's own, no snapshots, in a temporary folder)."""
    llama_generate.PromptLookup = CountedLookup  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as tmp:
        backend = LlamaCppBackend(settings or Settings(data_dir=Path(tmp), kv_snapshots=False))
        for name, config in DRAFT_CONFIGS:
            for label, prompts in (("grounded", GROUNDED), ("free chat", FREE)):
                ratios, runs_seen = [], []
                CountedLookup.made.clear()
                for prompt in prompts:
                    with_d, without = [], []
                    for _ in range(runs):
                        backend._prompt_lookup = True
                        with_d.append(rate(backend, prompt, config))
                        backend._prompt_lookup = False
                        without.append(rate(backend, prompt, config))
                    ratios.append(statistics.median(with_d) / statistics.median(without))
                    runs_seen += [f"{a / b:.2f}" for a, b in zip(with_d, without, strict=True)]
                proposed = sum(x.proposed_total for x in CountedLookup.made)
                accepted = sum(x.accepted_total for x in CountedLookup.made)
                tokens = sum(len(x.ids) - x.prompt_len for x in CountedLookup.made)
                # decode cost at the quiet-machine curve: a draft batch gives 1 + its accepted tokens
                # for its cost, every other token costs 1
                batches = sum(x.batches for x in CountedLookup.made)
                cost = sum(x.batch_cost for x in CountedLookup.made)
                modelled = tokens / (tokens - batches - accepted + cost)
                target = ">= 1.3" if label == "grounded" else ">= 0.97"
                print(
                    f"2. drafting tokens/s with / without, {label}, {name}: "
                    f"{' '.join(f'{r:.2f}' for r in ratios)}  median {statistics.median(ratios):.3f}  "
                    f"(target {target}; pairs {' '.join(runs_seen)}; drafts accepted {accepted}/{proposed}; "
                    f"at the prior cost curve {modelled:.3f})",
                    flush=True,
                )
        print(f"   learned batch cost / one token: {batch_curve(backend)}")
        backend.close()


def batch_curve(backend: LlamaCppBackend) -> str:
    costs = backend._batch_costs
    return " ".join(f"{n}:{costs.ratio(n):.2f}" for n in sorted(costs._seen) if n > 1)


COLD = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {root!r})
from engine import GenerationConfig, Settings, build
from engine.types import TextDelta
warm = sys.argv[1] == "1"
threads = int(sys.argv[2]) or None  # 0: Hearth's default
settings = Settings(data_dir=Path(tempfile.mkdtemp()), n_threads=threads, n_threads_batch=threads)
services = build(settings, warm_up=warm)
if warm:
    services.warm_up.wait()  # the page is up; the user types after start-up finished
out = []
for text in ("Hello! What can you do?", "Name three colours."):
    start = time.perf_counter()
    for event in services.chat.stream_turn(None, text, GenerationConfig(temperature=0.0, max_tokens=8)):
        if isinstance(event, TextDelta):
            out.append(time.perf_counter() - start)
            break
services.close()
print(json.dumps(out))
"""


def cold_start(runs: int, n_threads: int = 0) -> None:
    for warm in (True, False):
        ratios = []
        for _ in range(runs):
            command = [
                sys.executable,
                "-c",
                COLD.format(root=str(ROOT)),
                "1" if warm else "0",
                str(n_threads),
            ]
            proc = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=True)
            first, second = json.loads(proc.stdout.strip().splitlines()[-1])
            ratios.append(first / second)
        print(
            f"3. cold start first-turn / second-turn TTFT, {'with' if warm else 'without'} warm-up: "
            f"{statistics.median(ratios):.2f}  (runs {' '.join(f'{r:.2f}' for r in ratios)}; target <= 1.2)"
        )


def threads(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        auto = LlamaCppBackend(Settings(data_dir=Path(tmp), kv_snapshots=False))
        one = LlamaCppBackend(Settings(data_dir=Path(tmp), kv_snapshots=False, n_threads=1))
        config = GenerationConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=150)
        a, b = [], []
        for _ in range(runs):
            a.append(rate(auto, FREE[0], config))
            b.append(rate(one, FREE[0], config))
        print(
            f"4. tokens/s default threads ({auto.info.n_threads} gen / {auto.info.n_threads_batch} batch) "
            f"{statistics.median(a):6.1f}  --n-threads 1 {statistics.median(b):6.1f}  "
            f"ratio {statistics.median(a) / statistics.median(b):.3f}"
        )
        auto.close()
        one.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated: switch,drafting,cold,threads")
    parser.add_argument(
        "--n-threads", type=int, default=0, help="cold start only: llama.cpp threads (0: default)"
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    for name, fn in (
        ("switch", switch_back),
        ("drafting", drafting),
        ("cold", lambda runs: cold_start(runs, args.n_threads)),
        ("threads", threads),
    ):
        if name not in skip:
            fn(args.runs)


if __name__ == "__main__":
    main()
