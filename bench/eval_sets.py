"""The evaluation sets under bench/data/eval: ingest them, ask their questions, score the answers.

A question is answered at rank r when the r-th hit comes from its ``doc`` (or one of its
``alt`` pages, where a set lists them) and holds its ``answer`` (white space ignored, so line
wraps do not matter). Used by bench_rag.py and
tune_fusion.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "bench" / "data" / "eval"
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class EvalSet:
    name: str
    folder: Path
    questions: list[dict]

    @property
    def docs(self) -> list[Path]:
        return sorted((self.folder / "docs").iterdir())


def load_sets(names: Iterable[str] | None = None) -> list[EvalSet]:
    wanted = set(names) if names else None
    sets = []
    for folder in sorted(p for p in EVAL_DIR.iterdir() if (p / "questions.json").exists()):
        if wanted is None or folder.name in wanted:
            data = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
            sets.append(EvalSet(folder.name, folder, data["questions"]))
    return sets


def squash(text: str) -> str:
    return _SPACE.sub("", text)


def ingest(services, eval_set: EvalSet) -> int:
    """Add the set's documents to a collection named after it (a no-op when already there)."""
    results = services.documents.ingest_paths(eval_set.docs, collection=eval_set.name)
    bad = [r.message for r in results if r.status == "error"]
    assert not bad, bad
    return sum(r.items for r in results)


def relevant_chunks(services, eval_set: EvalSet) -> list[set[str]]:
    """Per question, the ids of the chunks that answer it."""
    by_doc: dict[str, list[tuple[str, str]]] = {}
    for chunk_id, text, source in services.documents.all_chunks(eval_set.name):
        by_doc.setdefault(source, []).append((chunk_id, squash(text)))
    out = []
    for q in eval_set.questions:
        answer = squash(q["answer"])
        found = {i for i, text in by_doc.get(q["doc"], []) if answer in text}
        assert found, f"no chunk of {q['doc']} holds {q['answer']!r}"
        for other in q.get("alt", ()):  # another page that answers it as well
            found |= {i for i, text in by_doc.get(other, []) if answer in text}
        out.append(found)
    return out


def first_rank(ranking: Iterable[str], relevant: set[str], k: int = 5) -> int | None:
    for rank, chunk_id in enumerate(ranking, start=1):
        if rank > k:
            return None
        if chunk_id in relevant:
            return rank
    return None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "recall@5": sum(r is not None for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
        "n": len(ranks),
    }


def by_split(eval_set: EvalSet, ranks: list[int | None]) -> dict[str, dict[str, float]]:
    out = {}
    for split in ("tune", "held_out"):
        out[split] = metrics([r for q, r in zip(eval_set.questions, ranks) if q["split"] == split])
    out["all"] = metrics(ranks)
    return out


def evaluate(
    eval_set: EvalSet, relevant: list[set[str]], search: Callable[[str], list[str]]
) -> dict[str, dict[str, float]]:
    """``search`` maps a question to ranked chunk ids."""
    ranks = [first_rank(search(q["q"]), rel) for q, rel in zip(eval_set.questions, relevant)]
    return by_split(eval_set, ranks)
