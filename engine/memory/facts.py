"""Facts a user states about themselves, found in their own messages.

Two extractors, used together after a turn:

* ``statements``: deterministic, for first-person statements ("my sister is...",
  "I live in...", "I'm allergic to..."). Cheap, and it works when the model does not.
* ``model_facts``: the chat model lists facts under a GBNF grammar (always valid JSON).
  Its request continues the turn's own prompt, so llama.cpp reuses the KV prefix and the
  next turn's prefix stays cached. A small model invents things and retrieved text can
  try to plant "facts", so a proposed fact is kept only when its words come from the
  user's own message (``grounded``).
"""

from __future__ import annotations

import json
import logging
import re

from ..backends.base import Backend
from ..config import GenerationConfig
from ..errors import EngineError
from ..types import Message
from .grammar import literal
from .recall import keywords

log = logging.getLogger("hearth.memory")

#: a statement shorter or longer than this (in words) is not a fact worth keeping
MIN_WORDS, MAX_WORDS = 3, 45
#: share of a model fact's content words that must appear in the user's message
GROUNDED_SHARE = 0.75
MAX_MODEL_FACTS = 3
MAX_FACT_CHARS = 110
#: tokens of the facts JSON besides the strings, worst case
FACTS_OVERHEAD = 24
#: the most tokens one fact proposal may take (three facts of a dozen words fit)
MAX_FACT_TOKENS = 120

# "my <up to 5 words> <verb>": a short list, plus any -s / -ed word after at least one word
_MY = (
    r"\b(?:my|our)\s+(?:(?:[\w'’-]+\s+){0,5}?(?:is|was|are|were|'s|’s|has|had|grew|came|got|turned|died)"
    r"|(?:[\w'’-]+\s+){1,5}?\w+(?:s|ed))\b"
)
_I_VERBS = (
    r"live|lived|work|worked|grew up|was born|were born|like|love|prefer|hate|dislike|enjoy|have|had|own|"
    r"study|studied|moved|speak|play|teach|drive|eat|drink|can't eat|cannot eat|don't eat|never eat|"
    r"avoid|go|went|visit|celebrate|take|use|support|collect|ride|run|swim|volunteer|married|got|started|"
    r"retired|graduated|belong|practice|practise|keep|wear|cook|bake|grow|"
    r"suffer|broke|tore|hurt|injured|adopted|met|learned|learnt|joined|left|quit|cycle|walk|commute|"
    r"can't stand|cannot stand|don't like|don't drink|never drink|used to|\w+ed"
)
_I = rf"\b(?:i|we)\s+(?:\w+ly\s+|also\s+|still\s+|just\s+)?(?:{_I_VERBS})\b"
_I_AM = r"\b(?:i'm|i’m|i am|we're|we are|i've been|i’ve been|i have been|we've been)\s+(?!(?:not sure|wondering|asking|looking|trying|going to|curious|just|here|sorry|glad|happy to help|confused)\b)\w"
_NAME = r"\b(?:call me|my name's|my name is)\b"
PATTERN = re.compile("|".join([_MY, _I, _I_AM, _NAME]), re.IGNORECASE)
#: requests and musings, not facts ("I'd like to know", "I have a question", "can you ...")
NOT_FACT = re.compile(
    r"^\s*(?:can|could|would|will|please|tell|what|how|why|where|when|who|which|do|does|is|are|help)\b"
    r"|\b(?:you|your)\b|\bi (?:have|had) (?:a|another|one more) (?:question|problem|request)\b"
    r"|\bi (?:want|need|wonder|think|guess|hope|wish)\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")

FACTS_REQUEST = (
    "Memory step (not shown to the user). List lasting facts that my last message states about me, "
    "my family, friends, pets, home, work, health, dates or preferences, each as a short sentence "
    'about "the user". Only what I said myself; none if there are none. Reply as JSON.'
)


def statements(text: str) -> list[str]:
    """First-person statements of ``text`` that state something lasting about the user."""
    found = []
    for sentence in _SENTENCES.split(text or ""):
        sentence = " ".join(sentence.split()).strip(" -*•")
        if not sentence or sentence.endswith("?") or not PATTERN.search(sentence):
            continue
        if NOT_FACT.search(sentence) or not MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
            continue
        found.append(sentence.rstrip(".!") + ".")
    return list(dict.fromkeys(found))


def looks_personal(text: str) -> bool:
    """Whether a message may hold facts at all (the model is asked only then)."""
    return bool(statements(text))


def facts_grammar(max_facts: int = MAX_MODEL_FACTS, max_chars: int = MAX_FACT_CHARS) -> str:
    """GBNF for {"facts":[]} or {"facts":["...",...]} with at most ``max_facts`` bounded strings."""
    more = " ".join([f"( {literal(',')} fact" for _ in range(max_facts - 1)]) + " )?" * (max_facts - 1)
    opening, closing = literal('{"facts":['), literal("]}")
    return "\n".join(
        [
            f"root ::= {opening} ( fact {more} )? {closing}",
            f'fact ::= "\\"" [A-Z] char{{8,{max_chars}}} "\\""',
            r'char ::= [^"\\\x7F\x00-\x1F]',
        ]
    )


def model_facts(backend: Backend, prompt: list[Message], answer: str, user_text: str) -> list[str]:
    """Facts the model finds in ``user_text``, kept only if grounded in it; [] on any failure."""
    messages = [
        *prompt,
        Message(role="assistant", content=answer),
        Message(role="user", content=FACTS_REQUEST),
    ]
    room = backend.info.n_ctx - backend.count_prompt_tokens(messages) - 8
    max_chars = min(MAX_FACT_CHARS, (room - FACTS_OVERHEAD) // MAX_MODEL_FACTS)
    if max_chars < 24:
        return []  # the turn filled the context; the deterministic facts still count
    # a cut-off list does not parse and counts as none: cheaper than letting a small model ramble
    config = GenerationConfig(
        temperature=0.0, top_k=1, max_tokens=min(room, MAX_FACT_TOKENS), repeat_penalty=1.0
    )
    try:
        chunks = backend.stream_chat(messages, config, grammar=facts_grammar(max_chars=max_chars))
        output = "".join(c.text for c in chunks)
        facts = json.loads(output)["facts"]
    except (EngineError, ValueError, KeyError, TypeError) as e:
        log.info("the model proposed no usable facts: %s", e)
        return []
    return [f.strip() for f in facts if isinstance(f, str) and grounded(f, user_text)]


def grounded(fact: str, source: str) -> bool:
    """Most of the fact's content words (by stem) appear in the user's own words."""
    words = [w for w in keywords(fact) if w not in ("user", "user's", "users")]
    if len(words) < 2:
        return False
    said = {_stem(w) for w in keywords(source)}
    return sum(_stem(w) in said for w in words) >= GROUNDED_SHARE * len(words)


def _stem(word: str) -> str:
    return word.removesuffix("'s")[:5]
