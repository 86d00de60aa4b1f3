"""Fusing dense and keyword results.

Reciprocal rank fusion (equal weights, rank only) let the weaker retriever push good keyword
hits out of the top 5 on mixed Chinese/English notes. What replaces it: each list's scores
normalised to [0, 1] by the list's best score,
then a weighted sum whose weight depends on the question: exact identifiers, codes, quotes,
rare tokens and text the embedder cannot read (CJK for an English-only model) lean on
keywords; plain natural-language questions lean on vectors. The weights were tuned on the
tuning splits of bench/data/eval (bench/tune_fusion.py), never on the held-out splits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: the constant from Cormack, Clarke & Buettcher (SIGIR 2009); damps the top ranks' weight
RRF_K = 60

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
# flags (-x, --long-name), paths, dotted/underscored/camel identifiers, codes mixing digits and letters
_IDENTIFIER = re.compile(
    r"(?:^|\s)--?[A-Za-z][\w-]*|[\w.-]*/[\w./-]+|\b\w+_\w+\b|\b[A-Za-z]+\d[\w.-]*|\b\d+[A-Za-z][\w.-]*"
    r"|\b[a-z]+[A-Z]\w*|\b[A-Z]{2,}\b|\$\w+|\w+\.\w+\.\w+|\w+\(\d\)"
)
_QUOTED = re.compile(r"[\"“”«»„`'][^\"“”«»„`']{2,}[\"“”«»„`']")


@dataclass(frozen=True, kw_only=True)
class FusionWeights:
    """How much the dense list counts, in [0, 1] (keywords get the rest), for a question.

    Defaults: the best on the tuning splits of bench/data/eval (bench/tune_fusion.py); among
    equally good weights, the largest CJK shift (an English-only embedder has no vocabulary
    for Chinese, so a Chinese question is left to keywords)."""

    #: a question in a language the embedder reads (or any question, for a multilingual one)
    dense: float = 0.4
    #: taken off when the question holds CJK text and the embedder reads only English
    cjk: float = 0.4
    #: taken off when the question holds an identifier, a flag, a path, a code or a quote
    identifier: float = 0.1


def dense_weight(
    query: str, weights: FusionWeights = FusionWeights(), *, multilingual: bool = False
) -> float:
    """The dense list's share for ``query`` (the keyword list gets ``1 - share``)."""
    w = weights.dense
    if weights.identifier and (_IDENTIFIER.search(query) or _QUOTED.search(query)):
        w -= weights.identifier
    if not multilingual and _CJK.search(query):
        w -= weights.cjk
    return min(1.0, max(0.0, w))


def _by_best(scores: Mapping[str, float]) -> dict[str, float]:
    high = max(scores.values(), default=0.0)
    return {i: (max(s, 0.0) / high if high > 0 else 0.0) for i, s in scores.items()}


def score_fusion(
    dense: Mapping[str, float], keyword: Mapping[str, float], *, dense_share: float, candidates: int
) -> list[tuple[str, float]]:
    """Best-first (id, fused score): ``dense_share`` * cosine / best cosine + the rest *
    BM25 / best BM25. An id missing from a list cut at ``candidates`` gets that list's lowest
    normalised score (it ranked somewhere below); missing from a shorter list, 0 (that
    retriever did not find it at all). Ties keep dense order, then keyword order.

    Dividing by the best score (not min-max) keeps how far apart the scores really are: a
    flat dense list (no passage clearly about the question) barely moves the keyword order.
    """
    d, k = _by_best(dense), _by_best(keyword)
    d_floor = min(d.values()) if len(d) >= candidates else 0.0
    k_floor = min(k.values()) if len(k) >= candidates else 0.0
    order = {i: n for n, i in enumerate(dict.fromkeys([*dense, *keyword]))}
    fused = {i: dense_share * d.get(i, d_floor) + (1 - dense_share) * k.get(i, k_floor) for i in order}
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))


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
