"""One turn as one typed value, and the protocol through which memory, documents and images feed it.

``ChatService`` loads a ``Turn`` once (one read of the conversation), asks every
``ContextProvider`` for its ``Contribution`` at the same time (retrieval runs in threads,
off the critical path), builds the prompt, streams the answer and saves it; then, as an
explicit step after the save, each ``AfterAnswer`` hook (memory: indexing, automatic
memories, the summary) runs in the background.

This module imports nothing from engine.chat: providers depend on it, never on the chat.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from .backends.base import Backend
from .errors import EngineError
from .prompt import PromptPlan, prompt_budget
from .store import StoredConversation, StoredMessage
from .types import Hit, Usage

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class Turn:
    """Everything a provider may know about this turn, read from SQLite once."""

    id: str
    conversation: StoredConversation
    #: the message being answered (saved before anything else happens)
    user_message: StoredMessage
    #: the active messages before ``user_message``, oldest first
    history: tuple[StoredMessage, ...]
    #: the model answering (kept open for the turn by the chat's lease)
    backend: Backend
    #: tokens the prompt may fill (engine.prompt.prompt_budget)
    budget: int
    #: a browser on this machine shows the answer: decoding leaves it a core (Backend.stream_chat)
    spare_core: bool = False

    @classmethod
    def opened(
        cls,
        backend: Backend,
        conversation: StoredConversation,
        user_message: StoredMessage,
        history: Sequence[StoredMessage],
        max_tokens: int,
    ) -> Turn:
        """A new turn whose answer may take up to ``max_tokens``."""
        return cls(
            id=uuid.uuid4().hex,
            conversation=conversation,
            user_message=user_message,
            history=tuple(history),
            backend=backend,
            budget=prompt_budget(backend.info.n_ctx, max_tokens),
        )

    @property
    def query(self) -> str:
        return self.user_message.content

    @property
    def n_ctx(self) -> int:
        return self.backend.info.n_ctx

    @property
    def count_tokens(self) -> Callable[[str], int]:
        return self.backend.count_tokens

    def usage_of(self, answer: str, usage: Usage) -> Usage:
        """``usage`` counting ``answer``'s tokens: an answer whose reader left before its last
        chunk (which carries the count) still records what it wrote."""
        try:
            return replace(usage, completion_tokens=self.backend.count_tokens(answer))
        except EngineError:  # the model was unloaded meanwhile
            return usage


@dataclass(frozen=True, kw_only=True)
class Contribution:
    """What one provider adds to a turn's prompt."""

    #: the provider's name, as the status line shows it ("memory", "documents", "images")
    source: str
    #: quoted reference material, best first
    hits: tuple[Hit, ...] = ()
    #: core memory blocks for the stable prefix (memory only)
    core_memory: str = ""
    #: the running summary of evicted history (memory only)
    summary: str = ""
    #: messages with seq <= this are folded into ``summary`` and stay out of the window
    #: (they remain in recall memory); keeps the window start, and the KV cache, stable
    history_after_seq: int = 0
    #: why the provider could not (fully) contribute this turn; the chat answers without it
    error: str = ""

    @property
    def note(self) -> str:
        """The status line's words for a failure, e.g. "documents unavailable: <reason>"."""
        return f"{self.source} unavailable: {self.error}" if self.error else ""


class ContextProvider(Protocol):
    """Anything that contributes to a turn: memory, documents, images.

    ``contribute`` runs in a worker thread beside the other providers; it reports a
    failure in ``Contribution.error`` instead of raising (an unexpected exception is
    caught by the chat and reported the same way).
    """

    @property
    def provider_name(self) -> str: ...

    def contribute(self, turn: Turn) -> Contribution: ...


class AfterAnswer(Protocol):
    """Work a provider does once the answer is saved (memory: index, remember, summarize)."""

    def after_answer(
        self, turn: Turn, plan: PromptPlan, answer: StoredMessage, backend: Backend | None
    ) -> None: ...


#: threads kept for retrieval and its prefetch (made as needed, idle ones reused): starting
#: fresh ones every turn cost 1-3 ms of a turn's planning on 2 cores
RETRIEVAL_THREADS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def in_background(fn: Callable[..., _T], *args: object) -> Future[_T]:
    """Run ``fn(*args)`` on one of the retrieval threads."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=RETRIEVAL_THREADS, thread_name_prefix="hearth-retrieve")
    return _pool.submit(fn, *args)


def start_contributions(
    providers: Sequence[ContextProvider], turn: Turn
) -> list[tuple[str, Future[Contribution]]]:
    """Every provider's contribution, started at once, each on its own retrieval thread (one that
    is abandoned, its turn closed meanwhile, runs to its end: a few ms of wasted search)."""
    return [(p.provider_name, in_background(p.contribute, turn)) for p in providers]


def collect_contributions(pending: list[tuple[str, Future[Contribution]]]) -> list[Contribution]:
    """The contributions in provider order; a provider that raised is reported, not fatal."""
    out = []
    for name, future in pending:
        try:
            out.append(future.result())
        except Exception as e:  # noqa: BLE001 - a broken provider costs its hits, never the answer
            log.warning("%s failed this turn", name, exc_info=e)
            out.append(Contribution(source=name, error=str(e) or type(e).__name__))
    return out
