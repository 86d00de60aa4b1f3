"""Optional query rewriting with the loaded chat model.

Multi-query expansion asks for other phrasings of the question and fuses the results
of all; HyDE asks for a short hypothetical answer and embeds it, since an answer-shaped
passage often lies closer to the real passage than the question does. Both are off by
default: each costs a model call per search.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import EngineError

if TYPE_CHECKING:
    from ..models import ModelManager

#: (system prompt, user message) -> the model's reply
Generate = Callable[[str, str], str]
T = TypeVar("T")

MULTI_QUERY_SYSTEM = (
    "You rewrite search queries. Given a question, write {n} different short search queries "
    "that would find passages answering it: use synonyms and related terms. One query per "
    "line, no numbering, nothing else."
)
HYDE_SYSTEM = (
    "Write one short factual paragraph (at most 80 words) that could answer the question, "
    "as it might appear in a reference document. No preamble."
)
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Per-search switches; the defaults are what chat uses unless changed."""

    #: also search alternative phrasings written by the model, fused with the question's results
    multi_query: bool = False
    #: also embed a hypothetical answer written by the model (dense search only)
    hyde: bool = False
    #: candidates taken from each ranked list before fusion
    candidates: int = 40
    #: reorder the best fused passages with the cross-encoder, when one is configured
    rerank: bool = True
    #: how many of the best fused passages the cross-encoder reorders
    rerank_candidates: int = 20
    #: chat only: drop passages less similar than this to the question (cosine), unless they
    #: share an identifier-like term with it (what keyword search is for)
    min_similarity: float = 0.25


def expand_queries(query: str, generate: Generate, *, n: int = 3) -> list[str]:
    """Up to ``n`` alternative phrasings; [] when the model gives nothing usable."""
    reply = generate(MULTI_QUERY_SYSTEM.format(n=n), query)
    seen = {query.strip().lower()}
    out: list[str] = []
    for line in reply.splitlines():
        line = _NUMBERING.sub("", line).strip().strip('"')
        if 3 <= len(line) <= 300 and line.lower() not in seen:
            seen.add(line.lower())
            out.append(line)
    return out[:n]


def hypothetical_answer(query: str, generate: Generate) -> str:
    return generate(HYDE_SYSTEM, query).strip()[:2000]


def safe(fn: Callable[[], T], fallback: T) -> T:
    """Rewriting is an optional boost: a missing or failing model falls back to the plain query."""
    try:
        return fn()
    except EngineError:
        return fallback


def model_generator(models: ModelManager, *, max_tokens: int = 160) -> Generate:
    """A Generate over the currently loaded chat model (greedy, so repeatable)."""

    def generate(system: str, user: str) -> str:
        from ..config import GenerationConfig
        from ..types import Message

        config = GenerationConfig(temperature=0.0, top_k=1, max_tokens=max_tokens, seed=0)
        messages = [Message(role="system", content=system), Message(role="user", content=user)]
        return "".join(chunk.text for chunk in models.backend.stream_chat(messages, config))

    return generate
