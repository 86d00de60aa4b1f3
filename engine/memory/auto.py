"""Automatic memories: what the user says about themselves becomes an archival memory.

Runs after a turn is saved (ChatService calls ``after_turn`` after ``Done``, so never
on the time to first token). Facts come from ``facts.statements`` (deterministic) and
``facts.model_facts`` (grammar-constrained, grounded in the user's words). A fact close
to a kept automatic memory (cosine >= ``DUPLICATE_SCORE``) updates it and adds this
message to its sources, rather than piling up a second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..backends.base import Backend
from ..store import StoredConversation, StoredMessage
from ..types import Message
from .archival import ArchivalMemory
from .facts import model_facts, statements
from .message_vectors import QueryVectors
from .provenance import Origin

log = logging.getLogger("hearth.memory")

#: cosine similarity at which a new fact restates a kept memory (tuned on pairs like
#: "My dog is called Rex." / "My dog's name is Rex."; distinct facts about one person stay apart)
DUPLICATE_SCORE = 0.85
#: within one message, a model fact this close to a statement the user made says the same thing
SAME_TURN_SCORE = 0.7


@dataclass(frozen=True)
class Captured:
    #: "new" | "updated" | "same"
    action: str
    entry_id: str
    text: str


class AutoMemory:
    def __init__(self, archival: ArchivalMemory, queries: QueryVectors):
        self._archival = archival
        self._queries = queries

    def capture(
        self,
        conversation: StoredConversation,
        user_message: StoredMessage,
        *,
        backend: Backend | None = None,
        prompt: Sequence[Message] = (),
        answer: str = "",
    ) -> list[Captured]:
        """Keep the facts of ``user_message``; the model is asked only when the message states some."""
        facts = statements(user_message.content)
        if not facts:
            return []
        vectors = self._queries.embedder.embed(facts)
        if backend is not None and prompt:
            proposed = model_facts(backend, list(prompt), answer, user_message.content)
            if proposed:
                extra = self._queries.embedder.embed(proposed)
                for fact, vector in zip(proposed, extra):
                    if max(_cosine(vector, v) for v in vectors) < SAME_TURN_SCORE:
                        facts.append(fact)
                        vectors.append(vector)
        origin = Origin(
            kind="auto",
            conversation_id=conversation.id,
            message_id=user_message.id,
            note="automatic memory after a turn",
        )
        return [self._keep(fact, vector, origin) for fact, vector in zip(facts, vectors)]

    def _keep(self, fact: str, vector: list[float], origin: Origin) -> Captured:
        near = self._archival.nearest(vector, k=1)
        if near and near[0].score >= DUPLICATE_SCORE:
            entry = near[0]
            if not entry.auto or entry.text == fact:
                if entry.auto:
                    self._archival.add_source(entry.id, origin, fact)
                return Captured("same", entry.id, entry.text)  # a memory the user kept says it already
            updated = self._archival.update(entry.id, fact, origin=origin, vector=vector)
            return Captured("updated", updated.id, updated.text)
        entry = self._archival.insert(fact, origin=origin, vector=vector)
        return Captured("new", entry.id, entry.text)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b)))  # the embedder's vectors are L2-normalised
