"""The context manager: what memory puts into each turn, and the summary after it.

Prompt layout (engine/prompt.py), chosen so llama.cpp's KV cache stays valid:

    system: system prompt + core memory + running summary   (changes rarely)
    window: messages since the last eviction, oldest first  (only grows between evictions)
    user:   quoted memory/document hits + the question      (new every turn)

Memory hits go into the last message, after the stable prefix, so retrieving
different memories each turn never invalidates the cached prefix. Evictions happen
in batches (about half the history room at a time) rather than one message per turn,
so the window start, and with it the cache, stays put between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..chat import SAFETY_MARGIN, TurnContext
from ..errors import ConfigError, EngineError, GenerationError
from ..prompt import MESSAGE_OVERHEAD, PromptPlan
from ..store import StoredConversation, StoredMessage
from ..types import Hit
from .agent import run_agent
from .hybrid import MIN_RELEVANCE, min_relevance
from .provenance import Origin
from .recall import keywords
from .retrieve import MemoryRetriever
from .summary import choose_eviction, extractive_summary, fold_messages, keep_tail
from .tools import ToolContext

if TYPE_CHECKING:
    from ..backends.base import Backend
    from .service import MemoryService

log = logging.getLogger("hearth.memory")

#: a hit whose content words are at least this much already in the prompt is left out
REDUNDANT_SHARE = 0.8


@dataclass(frozen=True, kw_only=True)
class MemoryOptions:
    """How memory takes part in each turn (built from Settings)."""

    #: share of the prompt budget the window may fill before its oldest messages are summarized
    threshold: float = 0.75
    #: recall + archival memories retrieved into each turn (automatic mode)
    max_hits: int = 3
    #: fused relevance (meaning and words) a memory needs, by kind of question (engine/memory/hybrid.py)
    min_relevance: dict[str, float] = field(default_factory=lambda: dict(MIN_RELEVANCE))
    #: keep what the user says about themselves as archival memories after each turn
    auto: bool = True
    #: let the model call memory tools before it answers (grammar-constrained)
    agent: bool = False
    #: the most tool calls the agent may make in one turn
    agent_max_calls: int = 3

    def __post_init__(self) -> None:
        if not 0.2 <= self.threshold <= 0.95:
            raise ConfigError(
                "The summary threshold must be between 0.2 and 0.95 of the budget.", field="threshold"
            )
        if not all(0.0 <= t <= 1.0 for t in self.min_relevance.values()):
            raise ConfigError(
                "The memory relevance threshold must be between 0 and 1.", field="min_relevance"
            )
        if not 0 <= self.max_hits <= 20:
            raise ConfigError("Memory hits per turn must be between 0 and 20.", field="max_hits")
        if not 1 <= self.agent_max_calls <= 8:
            raise ConfigError("The agent may make 1 to 8 tool calls per turn.", field="agent_max_calls")


def prefix_caps(n_ctx: int) -> tuple[int, int]:
    """Token caps for core memory and the summary, safe for the smallest budget ChatService uses.

    ChatService reserves up to half the context for the answer, so the prompt budget is at
    least ``n_ctx - n_ctx // 2 - SAFETY_MARGIN``: core memory gets 30% of that, the summary 20%.
    """
    smallest_budget = n_ctx - n_ctx // 2 - SAFETY_MARGIN
    return max(32, int(smallest_budget * 0.3)), max(24, int(smallest_budget * 0.2))


class ContextManager:
    def __init__(self, memory: MemoryService, options: MemoryOptions):
        self._memory = memory
        self.options = options
        self.retriever = MemoryRetriever(memory)

    # before the answer

    def context_for_turn(self, conversation: StoredConversation, query: str) -> TurnContext:
        backend = self._memory.models.backend
        core_cap, summary_cap = prefix_caps(backend.info.n_ctx)
        summary = self._memory.summaries.get(conversation.id)
        found: list[Hit] = []
        if self.options.agent:
            found = self._agent_turn(backend, conversation, query, core_cap)
        core = self._memory.core.render(
            conversation.id, max_tokens=core_cap, count_tokens=backend.count_tokens
        )
        summary_text = keep_tail(summary.text, summary_cap, backend.count_tokens)
        hits = self._retrieve(query, conversation.id, summary.through_seq) if self.options.max_hits else []
        # what the prompt already says (core memory, summary, window) is not worth quoting again
        shown = _content_words(
            " ".join([core, summary_text, *self._window_texts(conversation.id, summary.through_seq)])
        )
        hits = [h for h in hits if not _redundant(h.text, shown)]
        return TurnContext(
            core_memory=core,
            summary=summary_text,
            hits=_merge(found, hits, self.options.max_hits),
            history_after_seq=summary.through_seq,
        )

    def _retrieve(self, query: str, conversation_id: str, through_seq: int) -> list[Hit]:
        """Archival memories and older messages about the question, best first; failures cost only hits."""
        k = max(8, 3 * self.options.max_hits)
        found = self.retriever.candidates(query, conversation_id, through_seq, k=k)
        threshold = min_relevance(query, self.options.min_relevance)
        # a past question says nothing about the user ("What is a river?" for "What is a lake?")
        return [
            h for h in found if h.score >= threshold and not _question(h)
        ]  # cut after the redundancy filter

    def _window_texts(self, conversation_id: str, through_seq: int) -> list[str]:
        return [m.content for m in self._window(conversation_id, through_seq)]

    def _agent_turn(
        self, backend: Backend, conversation: StoredConversation, query: str, core_cap: int
    ) -> list[Hit]:
        origin = Origin(kind="model", conversation_id=conversation.id, message_id=self._memory.last_user_message_id(conversation.id),
                        note="memory agent tool call")  # fmt: skip
        ctx = ToolContext(memory=self._memory, origin=origin)
        core = self._memory.core.render(
            conversation.id, max_tokens=core_cap, count_tokens=backend.count_tokens
        )
        labels = [b.label for b in self._memory.core.blocks(conversation.id)]
        run_agent(backend, self._memory.toolbox, ctx, core_memory=core, user_message=query, labels=labels,
                  max_calls=self.options.agent_max_calls)  # fmt: skip
        return ctx.found

    # after the answer (the backend's lock is free again)

    def remember(self, conversation: StoredConversation, plan: PromptPlan) -> None:
        """Index this turn's user message by meaning, and keep what it says about the user."""
        memory = self._memory
        try:
            memory.messages.check_collection()
            memory.messages.index_pending()
        except EngineError as e:  # indexed on a later turn, or by `memory reindex`
            log.warning("message vectors not updated this turn: %s", e)
        if not memory.auto_enabled:
            return
        messages = memory.conversations.messages(conversation.id)
        user = next((m for m in reversed(messages) if m.role == "user"), None)
        if user is None:
            return
        answer = next((m.content for m in messages if m.role == "assistant" and m.seq > user.seq), "")
        try:
            backend = memory.models.backend
        except EngineError:  # no model loaded: the deterministic facts still count
            backend = None
        try:
            memory.auto.capture(conversation, user, backend=backend, prompt=plan.messages, answer=answer)
        except EngineError as e:
            log.warning("automatic memory skipped this turn: %s", e)

    def after_turn(self, conversation: StoredConversation, plan: PromptPlan) -> None:
        try:
            self._maybe_summarize(conversation, plan)
        except EngineError as e:  # the chat goes on; the window is trimmed by the prompt builder meanwhile
            log.warning("summary skipped this turn: %s", e)

    def _maybe_summarize(self, conversation: StoredConversation, plan: PromptPlan) -> None:
        backend = self._memory.models.backend
        _, summary_cap = prefix_caps(backend.info.n_ctx)
        summary = self._memory.summaries.get(conversation.id)
        window = self._window(conversation.id, summary.through_seq)
        costs = [backend.count_tokens(m.content) + MESSAGE_OVERHEAD for m in window]
        n = choose_eviction(
            costs, [m.role for m in window],
            fixed=plan.sections.get("system", 0) + plan.sections.get("core_memory", 0),
            summary=plan.sections.get("summary", 0), summary_cap=summary_cap, budget=plan.budget,
            threshold=self.options.threshold, dropped=len(plan.dropped),
        )  # fmt: skip
        if n == 0:
            return
        evicted = window[:n]
        system = plan.messages[0] if plan.messages and plan.messages[0].role == "system" else None
        try:
            text = fold_messages(
                backend, system=system, previous=summary.text, messages=evicted, cap_tokens=summary_cap
            )
            status, note = "applied", f"folded {n} messages into the summary"
        except GenerationError as e:
            text = extractive_summary(summary.text, evicted, summary_cap, backend.count_tokens)
            status = "fallback"
            note = f"The model could not write the summary ({e}); kept the start of each message instead."
            log.warning(note)
        self._memory.summaries.save(summary, text, evicted, status=status, note=note)

    def _window(self, conversation_id: str, through_seq: int) -> list[StoredMessage]:
        messages = self._memory.conversations.messages(conversation_id)
        return [m for m in messages if m.role in ("user", "assistant") and m.seq > through_seq]


def _question(hit: Hit) -> bool:
    return hit.kind == "recall" and hit.meta.get("role") == "user" and hit.text.rstrip().endswith("?")


def _content_words(text: str) -> set[str]:
    return set(keywords(text))


def _redundant(text: str, shown: set[str]) -> bool:
    words = _content_words(text)
    return bool(words) and len(words & shown) >= REDUNDANT_SHARE * len(words)


def _merge(first: list[Hit], then: list[Hit], limit: int) -> list[Hit]:
    seen: set[tuple[str, str]] = set()
    merged = []
    for hit in [*first, *then]:
        if (hit.kind, hit.id) not in seen:
            seen.add((hit.kind, hit.id))
            merged.append(hit)
    return merged[: max(limit, len(first))]
