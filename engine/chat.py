"""ChatService: one turn from the user's words to a saved answer.

save the user message and load the turn (one read of the conversation) -> providers
(memory, documents, images) contribute in parallel -> build the prompt -> stream from
the backend -> save the answer in ``finally`` (a partial one after Stop) -> Done ->
memory's upkeep (index, remember, summarize) in the background (engine/upkeep.py).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from .backends.base import Backend
from .config import GenerationConfig
from .errors import NO_VISION, ConfigError, GenerationError, NotFoundError
from .models import ModelManager
from .prompt import PromptPlan, build_messages
from .store import ConversationStore, StoredConversation, StoredMessage
from .studio.provenance import draw_seed
from .turn import AfterAnswer, ContextProvider, Contribution, Turn, collect_contributions, start_contributions
from .types import (
    Chunk,
    ContextReport,
    Done,
    Event,
    Message,
    Sources,
    TextDelta,
    Timings,
    TurnStarted,
    Usage,
)
from .upkeep import Upkeep

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .backends.llama_cpp import LlamaCppBackend
    from .studio.service import StudioService
    from .studio.trace import TokenTrace

Mode = Literal["new", "regenerate", "edit"]


class MemoryHooks(ContextProvider, AfterAnswer, Protocol):
    """The memory subsystem's view of a turn: it contributes, then keeps up after the answer."""

    def prefetch(self, query: str) -> None: ...  # starts what needs only the question; returns at once


class ChatService:
    def __init__(
        self,
        *,
        models: ModelManager,
        conversations: ConversationStore,
        retrievers: Sequence[ContextProvider] = (),
        memory: MemoryHooks | None = None,
        default_system_prompt: str = "",
    ):
        self.models = models
        self.conversations = conversations
        #: documents and images (memory contributes first, through ``memory``)
        self.retrievers = list(retrievers)
        self.memory = memory
        self.default_system_prompt = default_system_prompt
        #: running turns: turn id -> (conversation id, its Stop event); a chat's two turns keep two
        self._cancels: dict[str, tuple[str, threading.Event]] = {}
        self._cancels_lock = threading.Lock()
        self.upkeep = Upkeep()
        #: records each answer's provenance and token trace (engine.studio; set by the factory)
        self.studio: StudioService | None = None

    # public API

    def new_conversation(
        self, *, title: str = "New chat", system_prompt: str | None = None
    ) -> StoredConversation:
        prompt = self.default_system_prompt if system_prompt is None else system_prompt
        return self.conversations.create(title=title, system_prompt=prompt)

    def stop(self, conversation_id: str, turn_id: str | None = None) -> bool:
        """Ask the running answers in this conversation (or only turn ``turn_id``) to stop.

        Their text so far is kept. Returns whether any answer was running.
        """
        with self._cancels_lock:
            events = [
                event
                for turn, (conversation, event) in self._cancels.items()
                if conversation == conversation_id and turn_id in (None, turn)
            ]
        for event in events:
            event.set()
        return bool(events)

    def wait_for_upkeep(self) -> None:
        """Return once the memory upkeep of every finished turn is done (tests, benchmarks)."""
        self.upkeep.wait()

    def close(self) -> None:
        """Finish pending upkeep; call before the stores close."""
        self.upkeep.close()

    def running_turns(self) -> int:
        """How many answers are streaming now (a new request waits behind them for the model)."""
        with self._cancels_lock:
            return len(self._cancels)

    def stream_turn(
        self,
        conversation_id: str | None,
        text: str,
        config: GenerationConfig,
        *,
        mode: Mode = "new",
        images: Sequence[Path] = (),
        spare_core: bool = False,
    ) -> Generator[Event, None, None]:  # callers close() it to end a turn early
        """Yield TurnStarted, ContextReport, TextDelta..., Sources, Done.

        ``mode``: "new" adds ``text`` as a user message; "regenerate" answers the last
        user message again (``text`` ignored); "edit" replaces the last user message with
        ``text``. Replaced messages stay in the database, marked inactive. ``images`` go to
        the model with the message (only a vision model loaded with its projector sees images).
        ``spare_core``: a browser on this machine shows the answer (see Backend.stream_chat).
        """
        # the lease keeps this model open until the turn ends, even if another one is loaded
        with self.models.lease() as backend:  # fails before saving anything if no model is loaded
            # what a regenerate replaces: shown again if it gives no answer (left before its
            # first word, or failed), so the next message follows an answer, not a bare question
            replaced = conversation_id if mode == "regenerate" else None
            shown = self.conversations.messages(replaced) if replaced else []
            try:
                yield from self._turn(backend, conversation_id, text, config, mode, images, spare_core)
            finally:
                if shown:
                    self.conversations.show_unless_answered([m.id for m in shown])

    def preview(self, conversation_id: str, text: str, config: GenerationConfig) -> PromptPlan:
        """The prompt ``text`` would get as this conversation's next message, memory and
        retrieval included, with nothing saved and nothing generated (benchmarks, inspection)."""
        with self.models.lease() as backend:
            self.upkeep.wait()
            conversation = self.conversations.get(conversation_id)
            history = self.conversations.messages(conversation.id)
            draft = StoredMessage(
                id="preview",
                conversation_id=conversation.id,
                seq=(history[-1].seq if history else 0) + 1,
                role="user",
                content=text,
                created_at="",
            )
            turn = Turn.opened(backend, conversation, draft, history, config.max_tokens)
            return self._plan(turn, collect_contributions(start_contributions(self.providers, turn)))

    @property
    def providers(self) -> list[ContextProvider]:
        """Memory first (its hits lead the references), then documents and images."""
        return [*([self.memory] if self.memory is not None else []), *self.retrievers]

    def _turn(
        self,
        backend: Backend,
        conversation_id: str | None,
        text: str,
        config: GenerationConfig,
        mode: Mode,
        images: Sequence[Path],
        spare_core: bool = False,
    ) -> Iterator[Event]:
        if images and not backend.supports_images:
            raise GenerationError(NO_VISION)
        config = draw_seed(config)  # the seed actually used is saved with the answer
        if self.memory is not None:  # a new question's vector is made while the message is saved
            self.memory.prefetch(text)
        # the previous turn's summary must be in place before this turn reads memory
        self.upkeep.wait()
        turn = dataclasses.replace(
            self._load(backend, conversation_id, text, config, mode), spare_core=spare_core
        )
        pending = start_contributions(self.providers, turn)  # retrieval runs while the turn goes on
        cancel = self._register(turn)  # Stop works from here on, before the first word too
        try:
            yield TurnStarted(
                conversation_id=turn.conversation.id, user_message_id=turn.user_message.id, turn_id=turn.id
            )
            contributions = collect_contributions(pending)
            plan = self._plan(turn, contributions)
            sent = plan.messages[-1].content
            self.conversations.set_prompt_content(turn.user_message.id, sent if sent != turn.query else None)
            yield ContextReport(sections=plan.sections, budget=plan.budget, n_ctx=turn.n_ctx)
            notes = tuple(c.note for c in contributions if c.note)
            yield from self._answer(turn, plan, config, images, notes, mode == "regenerate", cancel)
        finally:
            self._unregister(turn)  # left before the answer began (``_answer`` unregisters itself)

    def _answer(
        self,
        turn: Turn,
        plan: PromptPlan,
        config: GenerationConfig,
        images: Sequence[Path],
        notes: tuple[str, ...],
        replacing: bool,
        cancel: threading.Event,
    ) -> Iterator[Event]:
        backend, conversation_id = turn.backend, turn.conversation.id
        parts: list[str] = []
        usage, finish = Usage(n_ctx=turn.n_ctx), "error"
        started = time.perf_counter()
        first: float | None = None
        saved: StoredMessage | None = None
        traced = self.studio.traced(backend) if self.studio is not None and not images else None
        try:  # a Stop while the prompt was being planned: no word at all
            for chunk in () if cancel.is_set() else _chunks(turn, plan, config, images, cancel, traced):
                if chunk.text:
                    if first is None:
                        first = time.perf_counter()
                    parts.append(chunk.text)
                    yield TextDelta(text=chunk.text)
                if chunk.finish_reason:
                    finish, usage = chunk.finish_reason, chunk.usage or usage
            finish = finish if finish != "error" else "cancelled" if cancel.is_set() else "stop"
        except GeneratorExit:  # the reader left (a closed tab, a chat left mid-answer): keep what it got
            finish, usage = "cancelled", turn.usage_of("".join(parts), usage)
            raise
        finally:
            self._unregister(turn)  # the answer has ended: Stop has nothing to reach (before Done)
            timings = Timings.measured(started, first, time.perf_counter(), usage.completion_tokens)
            if _kept(parts, finish, replacing):
                saved = self._save_answer(turn, "".join(parts), config, usage, timings, finish, plan, traced)
        if saved is not None:
            # explicit steps once the answer is saved: Done shows at once, upkeep catches up
            self.upkeep.submit(functools.partial(self._after_answer, turn, plan, saved))
        if plan.cited:
            yield Sources(hits=plan.cited)
        yield Done(
            conversation_id=conversation_id,
            message_id=saved.id if saved else "",
            text="".join(parts),
            finish_reason=finish,
            usage=usage,
            timings=timings,
            model=backend.info.name,
            notes=notes,
        )

    def _register(self, turn: Turn) -> threading.Event:
        """This turn's Stop event, findable by ``stop`` until the turn ends."""
        cancel = threading.Event()
        with self._cancels_lock:
            self._cancels[turn.id] = (turn.conversation.id, cancel)
        return cancel

    def _unregister(self, turn: Turn) -> None:
        with self._cancels_lock:
            self._cancels.pop(turn.id, None)

    def _after_answer(self, turn: Turn, plan: PromptPlan, answer: StoredMessage) -> None:
        # while the user reads: the answer's tokens become reusable by the next turn (first, as
        # memory's model requests below continue this prompt and so reuse them too)
        turn.backend.settle(turn.conversation.id)
        hook: AfterAnswer | None = self.memory
        if hook is None:
            return
        # the model loaded now (the turn's may have been swapped out meanwhile), or none
        if self.models.info is None:
            hook.after_answer(turn, plan, answer, None)
            return
        with self.models.lease() as backend:
            hook.after_answer(turn, plan, answer, backend)

    # steps

    def _load(
        self, backend: Backend, conversation_id: str | None, text: str, config: GenerationConfig, mode: Mode
    ) -> Turn:
        """Save the user message (nothing typed is ever lost) and read the conversation, once."""
        if mode != "regenerate" and not text.strip():
            raise ConfigError("Type a message first.", field="message")
        if conversation_id is None:
            if mode != "new":
                raise NotFoundError("There is no conversation to regenerate or edit yet.")
            conversation = self.new_conversation(title=_title_from(text))
            messages: list[StoredMessage] = []
        else:
            conversation = self.conversations.get(conversation_id)
            messages = self.conversations.messages(conversation.id)
        if mode == "new" and not messages and conversation.title in ("", "New chat"):
            conversation = self.conversations.update(conversation.id, title=_title_from(text))
        user, history = self._user_message(conversation, messages, text, mode)
        return Turn.opened(backend, conversation, user, history, config.max_tokens)

    def _user_message(
        self, conversation: StoredConversation, messages: list[StoredMessage], text: str, mode: Mode
    ) -> tuple[StoredMessage, list[StoredMessage]]:
        """The message to answer, and the active messages before it."""
        if mode == "new":
            return self.conversations.add_message(conversation.id, "user", text), messages
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        if last_user is None:
            raise NotFoundError("This conversation has no message to regenerate or edit.")
        before = [m for m in messages if m.seq < last_user.seq]
        after = [m.id for m in messages if m.seq > last_user.seq]
        if mode == "regenerate":
            self.conversations.deactivate(after)
            return last_user, before
        self.conversations.deactivate([last_user.id, *after])
        return self.conversations.add_message(conversation.id, "user", text), before

    def _plan(self, turn: Turn, contributions: Sequence[Contribution]) -> PromptPlan:
        after_seq = max((c.history_after_seq for c in contributions), default=0)
        return build_messages(
            system_prompt=turn.conversation.system_prompt,
            core_memory="\n\n".join(c.core_memory for c in contributions if c.core_memory),
            summary="\n\n".join(c.summary for c in contributions if c.summary),
            history=[
                # as sent before (references included): an unchanged prefix keeps the KV cache valid
                Message(role="user" if m.role == "user" else "assistant", content=m.sent)
                for m in turn.history
                if m.role in ("user", "assistant") and m.seq > after_seq
            ],
            user_message=turn.query,
            references=[hit for c in contributions for hit in c.hits],
            count_tokens=turn.count_tokens,
            budget=turn.budget,
        )

    def _save_answer(
        self,
        turn: Turn,
        text: str,
        config: GenerationConfig,
        usage: Usage,
        timings: Timings,
        finish: str,
        plan: PromptPlan,
        traced: tuple[LlamaCppBackend, TokenTrace] | None,
    ) -> StoredMessage:
        """Save the answer (a partial one after Stop or an error) and, in the studio, how it was made."""
        # under its question even if another branch was shown meanwhile (then it is shown again)
        saved = self.conversations.add_message(
            turn.conversation.id,
            "assistant",
            text,
            parent_id=turn.user_message.id,
            model=self.models.info.name if self.models.info else "",
            config=config.to_dict(),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            ttft_s=timings.ttft_s,
            tokens_per_s=timings.tokens_per_s,
            finish_reason=finish,
            sources=[dataclasses.asdict(h) for h in plan.cited],
        )
        if self.studio is not None:
            self.studio.record(saved.id, turn.backend, config, traced[1] if traced else None)
        return saved


def _chunks(
    turn: Turn,
    plan: PromptPlan,
    config: GenerationConfig,
    images: Sequence[Path],
    cancel: threading.Event,
    traced: tuple[LlamaCppBackend, TokenTrace] | None = None,
) -> Iterator[Chunk]:
    backend, key = turn.backend, turn.conversation.id
    if traced is not None:  # the in-process model also records each token's candidates
        llama, trace = traced
        return llama.stream_chat(
            plan.messages, config, cancel=cancel, cache_key=key, trace=trace, spare_core=turn.spare_core
        )
    if images:  # only vision backends take images
        return backend.stream_chat(plan.messages, config, cancel=cancel, cache_key=key, images=list(images))
    return backend.stream_chat(
        plan.messages, config, cancel=cancel, cache_key=key, spare_core=turn.spare_core
    )


def _kept(parts: list[str], finish: str, replacing: bool) -> bool:
    """Whether an answer is saved: any text, or an end the model chose (an empty answer is one); not
    a failure, nor a regenerate stopped before its first word (the answer it replaced shows again)."""
    return bool(parts) or not (finish == "error" or (replacing and finish == "cancelled"))


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return (line[:57] + "...") if len(line) > 60 else (line or "New chat")
