"""One relevance score for a memory candidate, from its meaning and its words.

Both inputs are absolute, so one threshold can say "nothing here is about this question"
(unlike rank fusion or per-query min-max, which always crown a best hit):

* ``cosine``: similarity of the question and the memory (vectors, L2-normalised);
* ``coverage``: the share of the question's content words (by stem) that the memory holds.

``fused = (1 - w) * cosine + w * coverage``. A candidate without a vector (an assistant
message: only user messages are embedded) is scored by its words alone, discounted.
The weight and the threshold were tuned on bench/data/memory_eval.json's tuning split
(bench/bench_memory.py --tune); the held-out split never took part.
"""

from __future__ import annotations

from dataclasses import dataclass

from .recall import keywords

#: weight of keyword coverage in the fused score
KEYWORD_WEIGHT = 0.3
#: a candidate known only by its words counts this share of its coverage
KEYWORD_ONLY_FACTOR = 0.6
#: a memory below this fused score is not about the question (tuned; see the module doc)
MIN_RELEVANCE = 0.42


@dataclass(frozen=True)
class Scored:
    key: tuple[str, str]
    cosine: float | None
    coverage: float
    score: float


def stems(text: str) -> set[str]:
    return {_stem(w) for w in keywords(text)}


def coverage(query_stems: set[str], text: str) -> float:
    if not query_stems:
        return 0.0
    return len(query_stems & stems(text)) / len(query_stems)


def fused(cosine: float | None, cover: float, *, weight: float = KEYWORD_WEIGHT) -> float:
    if cosine is None:
        return KEYWORD_ONLY_FACTOR * cover
    return (1 - weight) * max(0.0, cosine) + weight * cover


def _stem(word: str) -> str:
    # crude but language-agnostic: "grandmother's"/"grandmothers" -> "grand", "working"/"works" -> "worki"/"works"
    word = word.removesuffix("'s").removesuffix("’s")
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:6]
