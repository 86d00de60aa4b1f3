"""Tune the fusion weights (engine/rag/fusion.py FusionWeights) on the tuning splits only.

    python bench/tune_fusion.py [--cache-dir DIR]

Ingests the evaluation sets once (kept in DIR between runs), collects each question's dense
and keyword candidates with their scores, then tries a grid of weights offline. The best
weights maximise the worst margin over all sets of hybrid recall@5 against the better single
retriever, then mean MRR (ties: the larger CJK shift); they are printed with their held-out numbers, which played no part.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import by_split, first_rank, ingest, load_sets, relevant_chunks  # noqa: E402

from engine import Settings, build  # noqa: E402
from engine.rag.fusion import FusionWeights, dense_weight, score_fusion  # noqa: E402

CANDIDATES = 40


def collect(cache: Path) -> dict:
    """Per set: questions' dense and keyword candidate scores and relevant ids (cached)."""
    out_file = cache / "candidates.json"
    if out_file.exists():
        return json.loads(out_file.read_text(encoding="utf-8"))
    services = build(Settings(data_dir=cache / "data"), load_model=False)
    data = {}
    try:
        for eval_set in load_sets():
            ingest(services, eval_set)
            relevant = relevant_chunks(services, eval_set)
            searcher = services.documents.searcher
            rows = []
            for q, rel in zip(eval_set.questions, relevant):
                dense: dict[str, float] = {}
                searcher._dense([q["q"]], CANDIDATES, [eval_set.name], dense)
                keyword = dict(searcher.keywords.search(q["q"], k=CANDIDATES, collections=[eval_set.name]))
                rows.append(
                    {
                        "q": q["q"],
                        "split": q["split"],
                        "dense": dense,
                        "keyword": keyword,
                        "relevant": sorted(rel),
                    }
                )
            data[eval_set.name] = rows
    finally:
        services.close()
    out_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return data


def ranks_for(rows: list[dict], weights: FusionWeights | None, mode: str = "hybrid") -> list[int | None]:
    ranks = []
    for row in rows:
        if mode == "dense":
            order = sorted(row["dense"], key=lambda i: -row["dense"][i])
        elif mode == "bm25":
            order = sorted(row["keyword"], key=lambda i: -row["keyword"][i])
        else:
            share = dense_weight(row["q"], weights)
            order = [
                i
                for i, _ in score_fusion(
                    row["dense"], row["keyword"], dense_share=share, candidates=CANDIDATES
                )
            ]
        ranks.append(first_rank(order, set(row["relevant"])))
    return ranks


class _Set:  # the shape by_split() wants
    def __init__(self, rows):
        self.questions = rows


def table(data: dict, weights: FusionWeights) -> dict[str, dict[str, dict]]:
    out = {}
    for name, rows in data.items():
        out[name] = {
            mode: by_split(_Set(rows), ranks_for(rows, weights, mode)) for mode in ("dense", "bm25", "hybrid")
        }
    return out


def objective(data: dict, weights: FusionWeights) -> tuple[float, float]:
    margins, mrrs = [], []
    for rows in data.values():
        tune = [r for r in rows if r["split"] == "tune"]
        res = {
            m: by_split(_Set(tune), ranks_for(tune, weights, m))["tune"] for m in ("dense", "bm25", "hybrid")
        }
        margins.append(res["hybrid"]["recall@5"] - max(res["dense"]["recall@5"], res["bm25"]["recall@5"]))
        mrrs.append(res["hybrid"]["mrr"] - max(res["dense"]["mrr"], res["bm25"]["mrr"]))
    return min(margins) + min(mrrs), sum(mrrs) / len(mrrs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/hearth-eval-cache"))
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    data = collect(args.cache_dir)
    grid = itertools.product([0.3, 0.4, 0.5, 0.6, 0.7], [0.0, 0.1, 0.2, 0.3, 0.4], [0.0, 0.1, 0.2, 0.3])
    scored = []
    for dense, cjk, identifier in grid:
        weights = FusionWeights(dense=dense, cjk=cjk, identifier=identifier)
        scored.append((objective(data, weights), weights))
    # ties: the larger CJK shift (an English-only embedder cannot read Chinese questions)
    scored.sort(key=lambda s: (*s[0], s[1].cjk), reverse=True)
    for score, weights in scored[:8]:
        print(f"{score[0]:+.3f} {score[1]:+.3f}  {weights}")
    best = scored[0][1]
    print(f"\nchosen: {best}\ncurrent default: {FusionWeights()}")
    for label, weights in (("chosen", best), ("default", FusionWeights())):
        print(f"\n== {label}")
        for name, modes in table(data, weights).items():
            for split in ("tune", "held_out"):
                cells = "  ".join(
                    f"{m} {modes[m][split]['recall@5']:.3f}/{modes[m][split]['mrr']:.3f}" for m in modes
                )
                print(f"{name:>9} {split:>8} n={modes['hybrid'][split]['n']:>3}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
