"""Which retrieved passages a chat turn quotes: those plausibly about the question.

Search always returns its best k; a chat should quote nothing rather than something unrelated.
A passage is kept when its vector is close to the question's, when it shares a code or name
with it, or when it is a strong keyword hit: among the best of this search (fused score) and
holding a real share of the question's keywords, more than one of them. The last rule keeps
what the embedder cannot judge: a Chinese question for the English-only MiniLM, whose
passages are often not even among the dense candidates. Its thresholds were chosen on the
tuning split of bench/data/eval/zh_mixed (bench/bench_chat_retrieval.py), never the held-out one.
"""

from __future__ import annotations

import re

from ..types import Hit
from .keyword import tokenize

#: keyword evidence: the share of the question's keywords (words, CJK character pairs) a passage holds
KEYWORD_EVIDENCE = 0.25
#: ... and at least this many of them (one shared word, "tell" in "tell me a joke", is chance)
MIN_SHARED_KEYWORDS = 2
#: ... in a passage whose fused score is at least this share of the best one's (search normalises
#: each list by its best score, so the top passage scores about 1)
MIN_FUSED = 0.5

_WORDISH = re.compile(r"\w[\w.:-]*\w")


def identifiers(text: str) -> set[str]:
    """Codes and names a small embedding model cannot know: ZX-4471, parse_args, HbA1c, NASA."""
    out: set[str] = set()
    for token in _WORDISH.findall(text):
        mixed = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
        if len(token) >= 3 and (mixed or "_" in token or "-" in token or token[1:] != token[1:].lower()):
            out.add(token.lower())
    return out


def relevant(hit: Hit, query: str, min_similarity: float) -> bool:
    """Close in meaning, or sharing a code or name, or a strong keyword hit."""
    dense = hit.meta.get("dense_score")
    if dense is not None and dense >= min_similarity:
        return True
    text = hit.text.lower()
    if any(term in text for term in identifiers(query)):
        return True
    return (
        hit.meta.get("bm25_score") is not None and hit.score >= MIN_FUSED and strong_keywords(query, hit.text)
    )


def strong_keywords(query: str, text: str) -> bool:
    """Whether ``text`` holds at least KEYWORD_EVIDENCE of the question's keywords, and two or more."""
    wanted = set(tokenize(query))
    shared = len(wanted & set(tokenize(text)))
    return shared >= MIN_SHARED_KEYWORDS and shared >= KEYWORD_EVIDENCE * len(wanted)
