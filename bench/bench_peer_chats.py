"""The peer in use (issue 11, benchmark 6): several grounded chats at once, against llama-server.

  bench/build_llama_server.sh                                  # once: builds llama-server
  python bench/bench_peer_chats.py [--chats 3] [--rounds 4] [--max-tokens 48]

A user with a few chats open (here through the OpenAI API, as a client such as Open WebUI
talks to both servers) asks about a different document in each, and goes from one chat to
the next. Each chat opens with a real manual page of the evaluation set (about 600 tokens)
and a question; every round asks each chat one follow-up, sending its whole history as
OpenAI clients do. Both servers keep their own answers in their histories, run greedy, on
the same GGUF, threads and context, out of the box otherwise (llama-server keeps one
cached prompt per slot; Hearth keeps a KV snapshot per chat, keyed by its opening).

Printed, for round 1 (every chat cold on both sides) and for the later rounds (every
turn comes back to a chat after the others were asked): median TTFT, tokens/s and whole
turn time of each side, and Hearth / llama-server ratios (TTFT and turn time: lower is
better; tokens/s: higher is better).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import SYSTEM, stream_answer  # noqa: E402
from bench_peer import both_servers  # noqa: E402
from bench_speed import pause_between_runs  # noqa: E402

DOCS = ROOT / "bench" / "data" / "eval" / "en_man" / "docs"
PAGES = ["grep.txt", "find.txt", "date.txt", "cut.txt", "df.txt"]
FOLLOW_UPS = [
    "Quote the first sentence of that page.",
    "Which option did it describe first? Answer in one sentence.",
    "Summarise the page in two sentences, in its own words.",
    "Name one example of using it, quoting the page.",
    "What does the page say about exit status?",
]
Turn = tuple[float, float, float]  # TTFT s, tokens/s, whole turn s


def opening(name: str, chars: int) -> list[dict]:
    text = (DOCS / name).read_text(encoding="utf-8")[:chars]
    question = f"Here is a manual page.\n\n{text}\n\nIn one sentence: what is this command for?"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def ask(client, model: str, history: list[dict], max_tokens: int) -> tuple[Turn, str]:
    start, stamps, tokens, text = stream_answer(client, model, history, max_tokens)
    end = time.perf_counter()
    rate = (tokens - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return (stamps[0] - start if stamps else end - start, rate, end - start), text


def run(args: argparse.Namespace) -> dict[str, dict[str, list[Turn]]]:
    names = PAGES[: args.chats]
    results: dict[str, dict[str, list[Turn]]] = {"first": {"hearth": [], "peer": []}}
    results["later"] = {"hearth": [], "peer": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        both_servers(Path(tmp), args.n_threads, args.server, flash_attn=args.flash_attn) as s,
    ):
        sides = {"hearth": (s["hearth"], s["hearth_model"]), "peer": (s["peer"], s["peer_model"])}
        histories = {side: {n: opening(n, args.chars) for n in names} for side in sides}
        for side, (client, model) in sides.items():  # untimed: first requests set up buffers
            ask(client, model, [{"role": "user", "content": "Hello!"}], 8)
        for r in range(args.rounds):
            for i, name in enumerate(names):
                order = list(sides) if (r + i) % 2 == 0 else list(reversed(sides))
                for side in order:
                    client, model = sides[side]
                    history = histories[side][name]
                    pause_between_runs()
                    turn, text = ask(client, model, history, args.max_tokens)
                    results["first" if r == 0 else "later"][side].append(turn)
                    follow_up = FOLLOW_UPS[r % len(FOLLOW_UPS)]
                    history += [
                        {"role": "assistant", "content": text},
                        {"role": "user", "content": follow_up},
                    ]
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
    return results


def report(results: dict[str, dict[str, list[Turn]]]) -> None:
    for label, key in (("round 1 (cold)", "first"), ("later rounds (switch back)", "later")):
        med = {
            side: [statistics.median(t[i] for t in turns) for i in range(3)]
            for side, turns in results[key].items()
        }
        h, p = med["hearth"], med["peer"]
        print(
            f"{label}: TTFT ms Hearth {h[0] * 1e3:6.0f}  llama-server {p[0] * 1e3:6.0f}  ratio {h[0] / p[0]:.3f}"
            f" | tokens/s {h[1]:5.1f} / {p[1]:5.1f}  ratio {h[1] / p[1]:.3f}"
            f" | turn s {h[2]:5.2f} / {p[2]:5.2f}  ratio {h[2] / p[2]:.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=None, help="llama-server binary (default: build_llama_server.sh)")
    parser.add_argument("--chats", type=int, default=3, help=f"chats open at once (at most {len(PAGES)})")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--chars", type=int, default=2400, help="characters of each manual page")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--n-threads", type=int, default=None, help="generation and batch threads for both")
    parser.add_argument(
        "--flash-attn",
        type=lambda t: {"auto": None, "on": True, "off": False}[t],
        default=None,
        help="Hearth's flash attention: auto (its default), on or off; llama-server keeps its own default",
    )
    report(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
