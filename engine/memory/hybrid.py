"""One relevance score for a memory candidate, from its meaning and its words.

Both inputs are absolute, so one threshold can say "nothing here is about this question"
(unlike rank fusion or per-query min-max, which always crown a best hit):

* ``cosine``: similarity of the question and the memory (vectors, L2-normalised);
* ``coverage``: the share of the question's content words (by stem) that the memory holds.

``fused = cosine + w * coverage``: shared words only ever add, so a paraphrase that shares
none (most do) keeps its full cosine. A candidate without a vector (an assistant message:
only user messages are embedded) is scored by its words alone, discounted.
The weight and the threshold were tuned on bench/data/memory_eval.json's tuning split
(bench/bench_memory.py --tune); the held-out split never took part.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .recall import keywords

#: weight of keyword coverage in the fused score. Tuned to 0 on the paraphrase set (shared
#: words added no separation there: most paraphrases share none, and unrelated questions
#: share stray words, "red wine" / "red Volvo"); keyword search still brings candidates
#: that vectors rank low, and scores the messages that have no vector.
KEYWORD_WEIGHT = 0.0
#: a candidate known only by its words counts this share of its coverage
KEYWORD_ONLY_FACTOR = 0.4
#: a question about the user ("my", "our") welcomes personal memories; one that merely says
#: "I" or "me" ("how do I boil an egg", "give me tips") less so; a general question needs a
#: close match. Fused score each kind of question needs (tuned; see the module doc).
MIN_RELEVANCE = {"self": 0.22, "first_person": 0.28, "general": 0.45}
_SELF = re.compile(r"\b(?:my|mine|myself|our|ours|ourselves)\b", re.IGNORECASE)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i’m|i've|i’ve|i'd|me|we|us)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Scored:
    key: tuple[str, str]
    cosine: float | None
    coverage: float
    score: float


def question_kind(query: str) -> str:
    if _SELF.search(query):
        return "self"
    return "first_person" if _FIRST_PERSON.search(query) else "general"


def min_relevance(query: str, thresholds: dict[str, float] | None = None) -> float:
    return (thresholds or MIN_RELEVANCE)[question_kind(query)]


@functools.lru_cache(maxsize=4096)
def stems(text: str) -> frozenset[str]:
    """The stems of ``text``'s search words; memoised: the same memories and messages are
    scored against every question."""
    return frozenset(_stem(w) for w in keywords(text))


def coverage(query_stems: frozenset[str], text: str) -> float:
    if not query_stems:
        return 0.0
    return len(query_stems & stems(text)) / len(query_stems)


def fused(cosine: float | None, cover: float, *, weight: float = KEYWORD_WEIGHT) -> float:
    if cosine is None:
        return KEYWORD_ONLY_FACTOR * cover
    return max(0.0, cosine) + weight * cover


def _stem(word: str) -> str:
    # crude but language-agnostic: "grandmother's"/"grandmothers" -> "grand", "working"/"works" -> "worki"/"works"
    word = word.removesuffix("'s").removesuffix("’s")
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:6]
