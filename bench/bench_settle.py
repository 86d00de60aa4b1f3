"""Next-turn TTFT after long answers, with the answer settled (re-evaluated in whole n_batch
chunks once it is done, while the user reads) against the same turn without it.

  python bench/bench_settle.py [--turns 6] [--answer-tokens 200] [--threads N]

Two chats on two copies of the bundled model, the same questions, greedy answers; turns
alternate between them so machine noise hits both alike. Each turn waits for the previous
turn's upkeep first (a user reading the answer), so settling is never on the timed path.
Prints the median TTFT ratio settled / not settled, and the prompt tokens each evaluated.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import timed_turn  # noqa: E402  (each turn's upkeep finishes outside its timing)

from engine import GenerationConfig, Settings, build  # noqa: E402

QUESTIONS = [
    "Write a detailed story about a lighthouse keeper and a storm.",
    "Now tell the same story from the point of view of the ship's captain.",
    "Write a letter the keeper sends to his daughter after that night.",
    "Describe the lighthouse itself, room by room.",
    "Write the newspaper article about the rescue.",
    "Write a short poem about the sea that night.",
    "List ten things the keeper keeps in his pocket, with a sentence each.",
    "Explain how a lighthouse lamp works, step by step.",
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--answer-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    config = GenerationConfig(temperature=0.0, max_tokens=args.answer_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        side = {}
        for name in ("settled", "unsettled"):
            settings = Settings(data_dir=Path(tmp) / name, n_ctx=8192, memory=False, n_threads=args.threads)
            side[name] = build(settings)
        side["unsettled"].models.backend.settle = lambda cache_key: 0  # the turn as it was before
        times: dict[str, list[float]] = {name: [] for name in side}
        evaluated: dict[str, list[int]] = {name: [] for name in side}
        chats: dict[str, str | None] = {name: None for name in side}
        try:
            for i in range(args.turns):
                order = ("settled", "unsettled") if i % 2 == 0 else ("unsettled", "settled")
                for name in order:
                    ttft, done = timed_turn(side[name], chats[name], QUESTIONS[i % len(QUESTIONS)], config)
                    chats[name] = done.conversation_id
                    times[name].append(ttft)
                    evaluated[name].append(done.usage.prompt_tokens - done.usage.cached_tokens)
        finally:
            for services in side.values():
                services.close()
    later = {name: times[name][1:] for name in side}  # turn 1 has no earlier answer to reuse
    print(f"{args.turns} turns, answers up to {args.answer_tokens} tokens, greedy")
    for name in side:
        print(
            f"  {name:10s} TTFT median {statistics.median(later[name]) * 1000:7.1f} ms   "
            f"evaluated prompt tokens per turn (median) {statistics.median(evaluated[name][1:]):.0f}"
        )
    ratio = statistics.median(later["settled"]) / statistics.median(later["unsettled"])
    print(f"next-turn TTFT settled / unsettled: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
