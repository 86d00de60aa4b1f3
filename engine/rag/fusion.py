"""Reciprocal rank fusion: merge ranked lists by rank alone, so scores on different
scales (cosine similarity, BM25) never need calibrating against each other."""

from __future__ import annotations

from collections.abc import Sequence

#: the constant from Cormack, Clarke & Buettcher (SIGIR 2009); damps the top ranks' weight
RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse several best-first id lists into one best-first list of (id, score).

    An id's score is the sum over lists of ``1 / (k + rank)`` (rank from 1); ties keep
    the order in which ids were first seen, so results are deterministic.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
