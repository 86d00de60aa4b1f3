"""What a chat turn quotes from the documents, against what search finds (issue 10's leftover).

    python bench/bench_chat_retrieval.py [--sets zh_mixed ...]

A chat turn quotes DocumentService.retrieve_for_chat: the hybrid search's top 4 (chat_k),
kept only when plausibly about the question (engine/rag/relevance.py). On each evaluation set
under bench/data/eval, per split ("tune", "held_out": never used to choose the rule), this
prints recall@k / MRR of plain hybrid search at k=4 and k=5 beside the chat path's: the chat
path should get what search gets. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_sets import EvalSet, evaluate, ingest, load_sets, relevant_chunks  # noqa: E402

from engine import Settings, build  # noqa: E402
from engine.factory import Services  # noqa: E402
from engine.store import StoredConversation  # noqa: E402


def chat_in(collection: str) -> StoredConversation:
    """A conversation whose turns search ``collection`` only."""
    return StoredConversation(
        id="bench", title="", system_prompt="", collections=[collection], created_at="", updated_at=""
    )


def run(data_dir: Path, sets: list[str] | None) -> dict[str, dict]:
    services = build(Settings(data_dir=data_dir), load_model=False)
    out: dict[str, dict] = {}
    try:
        for eval_set in load_sets(sets):
            ingest(services, eval_set)
            out[eval_set.name] = compare(services, eval_set)
    finally:
        services.close()
    return out


def compare(services: Services, eval_set: EvalSet) -> dict[str, dict]:
    relevant = relevant_chunks(services, eval_set)
    docs, conversation = services.documents, chat_in(eval_set.name)

    def hybrid(k: int) -> Callable[[str], list[str]]:
        return lambda q: [h.id for h in docs.search(q, k=k, collections=[eval_set.name])]

    return {
        "hybrid@4": evaluate(eval_set, relevant, hybrid(4)),
        "hybrid@5": evaluate(eval_set, relevant, hybrid(5)),
        "chat": evaluate(
            eval_set, relevant, lambda q: [h.id for h in docs.retrieve_for_chat(q, conversation)]
        ),
    }


def report(results: dict[str, dict]) -> None:
    print("recall@k / MRR: hybrid search at k=4 and k=5, and what a chat turn quotes (top 4, filtered)")
    for name, modes in results.items():
        print(f"\n  {name}")
        print(f"  {'split':>9} {'n':>4} " + " ".join(f"{m:>13}" for m in modes) + "   chat/hybrid@4")
        for split in ("tune", "held_out", "all"):
            cells = " ".join(f"{r[split]['recall@5']:6.3f}/{r[split]['mrr']:.3f}" for r in modes.values())
            base = modes["hybrid@4"][split]["recall@5"]
            ratio = modes["chat"][split]["recall@5"] / base if base else float("nan")
            print(f"  {split:>9} {modes['chat'][split]['n']:>4} {cells}   {ratio:13.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="*", help="evaluation sets (default: all under bench/data/eval)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hearth-chat-retrieval-") as tmp:
        report(run(Path(tmp) / "data", args.sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
