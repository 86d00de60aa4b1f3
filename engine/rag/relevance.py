"""Which retrieved passages a chat turn quotes: those plausibly about the question.

Search always returns its best k; a chat should quote nothing rather than something unrelated.
A passage is kept when its vector is close to the question's, when it shares a code or name
with it, or when it holds most of the question's keywords. The last rule keeps a strong
keyword hit that the embedder cannot judge (a Chinese question for the English-only MiniLM).
"""

from __future__ import annotations

import re

from ..types import Hit
from .keyword import tokenize

#: a passage holding at least this share of the question's keywords is about it, however far
#: its vector is (most of what the question names, not a stray shared word)
KEYWORD_EVIDENCE = 0.5

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
    """Close in meaning, or sharing a code or name, or holding most of the question's keywords."""
    dense = hit.meta.get("dense_score")
    if dense is not None and dense >= min_similarity:
        return True
    text = hit.text.lower()
    if any(term in text for term in identifiers(query)):
        return True
    return hit.meta.get("bm25_score") is not None and keyword_coverage(query, hit.text) >= KEYWORD_EVIDENCE


def keyword_coverage(query: str, text: str) -> float:
    """The share of the question's keywords (words, and character pairs of CJK text) in ``text``."""
    wanted = set(tokenize(query))
    return len(wanted & set(tokenize(text))) / len(wanted) if wanted else 0.0
