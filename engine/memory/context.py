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

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends.base import Backend
from ..errors import ConfigError, EngineError, GenerationError
from ..prompt import MESSAGE_OVERHEAD, PromptPlan, prefix_caps
from ..store import StoredMessage
from ..turn import Contribution, Turn
from ..types import Hit
from .agent import run_agent
from .core import CoreMemory
from .hybrid import MIN_RELEVANCE, min_relevance
from .provenance import Origin, Status
from .recall import keywords
from .retrieve import MemoryRetriever
from .summary import SummaryStore, choose_eviction, extractive_summary, fold_messages, keep_tail
from .tools import ToolBox, ToolContext, ToolMemory

__all__ = ["ContextManager", "MemoryOptions", "prefix_caps"]

log = logging.getLogger(__name__)

#: a hit whose content words are at least this much already in the prompt is left out
REDUNDANT_SHARE = 0.8
#: how automatic memories refer to the person they are about (stemmed: "user's" is "user")
PERSON_WORDS = frozenset({"user"})
#: words that only tie a name to what it names ("is called Pickles", "named Rita"), stemmed
LINK_WORDS = frozenset({"call", "nam", "known"})
_NOT_WORD = re.compile(r"[^\w'-]+")
#: the opening tag of a quoted memory or reference, attributes and all
_QUOTE_TAG = re.compile(r"<(?:memory|reference)\b[^>]*>")


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


class ContextManager:
    def __init__(
        self,
        *,
        core: CoreMemory,
        summaries: SummaryStore,
        retriever: MemoryRetriever,
        toolbox: ToolBox,
        tools: ToolMemory,
        options: MemoryOptions,
    ):
        self._core = core
        self._summaries = summaries
        self.retriever = retriever
        self._toolbox = toolbox
        self._tools = tools
        self.options = options

    # before the answer

    def contribute(self, turn: Turn) -> Contribution:
        """Core memory, the summary and the memories about this question (agent mode: after its tool calls)."""
        core_cap, summary_cap = prefix_caps(turn.n_ctx)
        summary = self._summaries.for_path(turn.conversation.id, turn.history)
        found = self._agent_turn(turn, core_cap) if self.options.agent else []
        core = self._core.render(turn.conversation.id, max_tokens=core_cap, count_tokens=turn.count_tokens)
        summary_text = keep_tail(summary.text, summary_cap, turn.count_tokens)
        hits, errors = self._retrieve(turn, summary.through_seq) if self.options.max_hits else ([], [])
        # what the prompt already says (core memory, summary, window) is not worth quoting again;
        # the question is not among it: "Is my cat called Pickles?" needs the memory that says so
        shown = _shown_words(core, summary_text, _window(turn.history, summary.through_seq))
        hits = [h for h in hits if not _redundant(h.text, shown)]
        return Contribution(
            source="memory",
            core_memory=core,
            summary=summary_text,
            hits=tuple(_merge(found, hits, self.options.max_hits)),
            history_after_seq=summary.through_seq,
            error="; ".join(errors),
        )

    def _retrieve(self, turn: Turn, through_seq: int) -> tuple[list[Hit], list[str]]:
        """Archival memories and older messages about the question, best first; failures cost only hits."""
        k = max(8, 3 * self.options.max_hits)
        found = self.retriever.search(turn.query, turn.conversation.id, through_seq, k=k)
        threshold = min_relevance(turn.query, self.options.min_relevance)
        # a past question says nothing about the user ("What is a river?" for "What is a lake?");
        # cut to max_hits after the redundancy filter
        return [h for h in found.hits if h.score >= threshold and not _question(h)], found.errors

    def _agent_turn(self, turn: Turn, core_cap: int) -> list[Hit]:
        conversation_id = turn.conversation.id
        origin = Origin(
            kind="model",
            conversation_id=conversation_id,
            message_id=turn.user_message.id,
            note="memory agent tool call",
        )
        ctx = ToolContext(memory=self._tools, origin=origin)
        core = self._core.render(conversation_id, max_tokens=core_cap, count_tokens=turn.count_tokens)
        labels = [b.label for b in self._core.blocks(conversation_id)]
        run_agent(
            turn.backend,
            self._toolbox,
            ctx,
            core_memory=core,
            user_message=turn.query,
            labels=labels,
            max_calls=self.options.agent_max_calls,
        )
        return ctx.found

    # after the answer (the backend's lock is free again)

    def summarize(self, turn: Turn, plan: PromptPlan, answer: StoredMessage, backend: Backend) -> None:
        """Fold the oldest messages into the summary once the window outgrows its share."""
        try:
            self._maybe_summarize(turn, plan, answer, backend)
        except EngineError as e:  # the chat goes on; the window is trimmed by the prompt builder meanwhile
            log.warning("summary skipped this turn: %s", e)

    def _maybe_summarize(self, turn: Turn, plan: PromptPlan, answer: StoredMessage, backend: Backend) -> None:
        _, summary_cap = prefix_caps(backend.info.n_ctx)
        path = [*turn.history, turn.user_message, answer]
        summary = self._summaries.for_path(turn.conversation.id, path)
        window = _window(path, summary.through_seq)
        # counted as the prompt builder counts them: as sent (quoted references included)
        costs = [backend.count_tokens(m.sent) + MESSAGE_OVERHEAD for m in window]
        n = choose_eviction(
            costs,
            [m.role for m in window],
            fixed=plan.fixed_tokens,
            summary=plan.summary_tokens,
            summary_cap=summary_cap,
            budget=plan.budget,
            threshold=self.options.threshold,
            dropped=len(plan.dropped),
        )
        if n == 0:
            return
        evicted = window[:n]
        system = plan.messages[0] if plan.messages and plan.messages[0].role == "system" else None
        try:
            text = fold_messages(
                backend, system=system, previous=summary.text, messages=evicted, cap_tokens=summary_cap
            )
            status: Status = "applied"
            note = f"folded {n} messages into the summary"
        except GenerationError as e:
            text = extractive_summary(summary.text, evicted, summary_cap, backend.count_tokens)
            status = "fallback"
            note = f"The model could not write the summary ({e}); kept the start of each message instead."
            log.warning(note)
        self._summaries.save(summary, text, evicted, status=status, note=note)


def _window(messages: Sequence[StoredMessage], through_seq: int) -> list[StoredMessage]:
    """The conversation's messages still in the prompt's window (after the summary)."""
    return [m for m in messages if m.role in ("user", "assistant") and m.seq > through_seq]


def _question(hit: Hit) -> bool:
    return hit.kind == "recall" and hit.meta.get("role") == "user" and hit.text.rstrip().endswith("?")


def _shown_words(core: str, summary: str, window: Sequence[StoredMessage]) -> set[str]:
    """The content words the prompt already holds. Messages count as sent: a memory quoted in an
    earlier turn of the window is still in the prompt. A quote's source attribute (a chat's
    title, say) is not something the prompt says, so it does not count."""
    said = [_QUOTE_TAG.sub(" ", m.sent) for m in window]
    return set().union(*(_content_words(text) for text in [core, summary, *said]))


@functools.lru_cache(maxsize=1024)  # the window's messages come back every turn
def _content_words(text: str) -> frozenset[str]:
    # quoted memories sit between tags with no space ("...ginger.</memory>"): split on those too
    return frozenset(_stem(w) for w in keywords(_NOT_WORD.sub(" ", text))) - LINK_WORDS


def _stem(word: str) -> str:
    """A word without its plural, past or -ing ending, nor a final e: "travels" and "travel",
    "named" and "name" say the same."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("s", "")):
        if (
            word.endswith(suffix)
            and len(word) - len(suffix) >= 3
            and not (suffix == "s" and word.endswith("ss"))
        ):
            word = word[: -len(suffix)] + keep
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _redundant(text: str, shown: set[str]) -> bool:
    # memories name the person "the user"; the window says "I" and "my", so that word is no content
    words = _content_words(text) - PERSON_WORDS
    return bool(words) and len(words & shown) >= REDUNDANT_SHARE * len(words)


def _merge(first: list[Hit], then: list[Hit], limit: int) -> list[Hit]:
    seen: set[tuple[str, str]] = set()
    merged: list[Hit] = []
    for hit in [*first, *then]:
        if (hit.kind, hit.id) not in seen:
            seen.add((hit.kind, hit.id))
            merged.append(hit)
    return merged[: max(limit, len(first))]
