"""ChatService: one turn from the user's words to a saved answer.

save the user message -> gather context (memory, retrieval) -> build the prompt ->
stream from the backend -> save the answer in ``finally`` (a partial one after Stop).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .config import GenerationConfig
from .errors import ConfigError, GenerationError, NotFoundError
from .models import ModelManager
from .prompt import PromptPlan, build_messages
from .store import ConversationStore, StoredConversation, StoredMessage
from .types import (
    ContextReport,
    Done,
    Event,
    Hit,
    Message,
    Sources,
    TextDelta,
    Timings,
    TurnStarted,
    Usage,
)

Mode = Literal["new", "regenerate", "edit"]

#: tokens kept free beyond max_tokens, for template differences in counting
SAFETY_MARGIN = 16


class Retriever(Protocol):
    """Anything that can contribute reference hits to a turn (documents, images, memory)."""

    def retrieve_for_chat(self, query: str, conversation: StoredConversation) -> list[Hit]: ...


@dataclass(kw_only=True)
class TurnContext:
    """What memory contributes to the stable prefix of a turn."""

    core_memory: str = ""
    summary: str = ""
    hits: list[Hit] = field(default_factory=list)
    #: messages with seq <= this are folded into ``summary`` and stay out of the window
    #: (they remain in recall memory); keeps the window start, and the KV cache, stable
    history_after_seq: int = 0


class MemoryHooks(Protocol):
    """The memory subsystem's view of a turn (see engine.memory)."""

    def context_for_turn(self, conversation: StoredConversation, query: str) -> TurnContext: ...

    def after_turn(
        self, conversation: StoredConversation, plan: PromptPlan, history: Sequence[StoredMessage]
    ) -> None: ...


class ChatService:
    def __init__(
        self,
        *,
        models: ModelManager,
        conversations: ConversationStore,
        retrievers: Sequence[Retriever] = (),
        memory: MemoryHooks | None = None,
        default_system_prompt: str = "",
    ):
        self.models = models
        self.conversations = conversations
        self.retrievers = list(retrievers)
        self.memory = memory
        self.default_system_prompt = default_system_prompt
        #: running turns: turn id -> (conversation id, its Stop event); two turns of one
        #: chat (two tabs, a double click) each keep their own
        self._cancels: dict[str, tuple[str, threading.Event]] = {}
        self._cancels_lock = threading.Lock()

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
    ) -> Generator[Event, None, None]:  # callers close() it to end a turn early
        """Yield TurnStarted, ContextReport, TextDelta..., Sources, Done.

        ``mode``: "new" adds ``text`` as a user message; "regenerate" answers the last
        user message again (``text`` ignored); "edit" replaces the last user message with
        ``text``. Replaced messages stay in the database, marked inactive. ``images`` go to
        the model with the message (only a vision model loaded with its projector sees images).
        """
        # the lease keeps this model open until the turn ends, even if another one is loaded
        with self.models.lease() as backend:  # fails before saving anything if no model is loaded
            yield from self._turn(backend, conversation_id, text, config, mode, images)

    def _turn(self, backend, conversation_id, text, config, mode, images) -> Iterator[Event]:
        if images and not backend.supports_images:
            raise GenerationError(
                "The loaded model cannot see images. Load a vision model with its projector "
                "(--mmproj FILE, or the Model tab) to send images to it."
            )
        conversation, user_msg = self._prepare(conversation_id, text, mode)
        turn_id = uuid.uuid4().hex
        yield TurnStarted(conversation_id=conversation.id, user_message_id=user_msg.id, turn_id=turn_id)

        history = [m for m in self.conversations.messages(conversation.id) if m.seq < user_msg.seq]
        plan = self._plan(backend, conversation, history, user_msg.content, config)
        sent = plan.messages[-1].content
        self.conversations.set_prompt_content(user_msg.id, sent if sent != user_msg.content else None)
        yield ContextReport(sections=plan.sections, budget=plan.budget, n_ctx=backend.info.n_ctx)

        cancel = threading.Event()
        with self._cancels_lock:
            self._cancels[turn_id] = (conversation.id, cancel)
        parts: list[str] = []
        usage, finish = Usage(n_ctx=backend.info.n_ctx), "error"
        started = time.perf_counter()
        first: float | None = None
        saved: StoredMessage | None = None
        try:
            extra = {"images": list(images)} if images else {}  # only vision backends take images
            chunks = backend.stream_chat(
                plan.messages, config, cancel=cancel, cache_key=conversation.id, **extra
            )
            for chunk in chunks:
                if chunk.text:
                    if first is None:
                        first = time.perf_counter()
                    parts.append(chunk.text)
                    yield TextDelta(text=chunk.text)
                if chunk.finish_reason:
                    finish, usage = chunk.finish_reason, chunk.usage or usage
            finish = finish if finish != "error" else "stop"
        except GeneratorExit:
            finish = "cancelled"
            raise
        finally:
            with self._cancels_lock:
                self._cancels.pop(turn_id, None)
            timings = _timings(started, first, time.perf_counter(), usage.completion_tokens)
            if parts or finish != "error":
                saved = self._save_answer(
                    conversation, "".join(parts), config, usage, timings, finish, plan, user_msg.id
                )
        if plan.cited:
            yield Sources(hits=plan.cited)
        yield Done(
            conversation_id=conversation.id,
            message_id=saved.id if saved else "",
            text="".join(parts),
            finish_reason=finish,
            usage=usage,
            timings=timings,
            model=backend.info.name,
        )
        # after Done, so the answer's status shows at once; a summary that evicts old
        # messages may take the model a few seconds (skipped if the client goes away,
        # and caught up on the next turn)
        if self.memory is not None:
            self.memory.after_turn(conversation, plan, history)

    # steps

    def _prepare(
        self, conversation_id: str | None, text: str, mode: Mode
    ) -> tuple[StoredConversation, StoredMessage]:
        if mode != "regenerate" and not text.strip():
            raise ConfigError("Type a message first.", field="message")
        if conversation_id is None:
            if mode != "new":
                raise NotFoundError("There is no conversation to regenerate or edit yet.")
            conversation = self.new_conversation(title=_title_from(text))
        else:
            conversation = self.conversations.get(conversation_id)
        messages = self.conversations.messages(conversation.id)
        if mode == "new":
            if not messages and conversation.title in ("", "New chat"):
                conversation = self.conversations.update(conversation.id, title=_title_from(text))
            return conversation, self.conversations.add_message(conversation.id, "user", text)
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        if last_user is None:
            raise NotFoundError("This conversation has no message to regenerate or edit.")
        after = [m.id for m in messages if m.seq > last_user.seq]
        if mode == "regenerate":
            self.conversations.deactivate(after)
            return conversation, last_user
        self.conversations.deactivate([last_user.id, *after])
        return conversation, self.conversations.add_message(conversation.id, "user", text)

    def _plan(
        self,
        backend,
        conversation: StoredConversation,
        history: Sequence[StoredMessage],
        query: str,
        config: GenerationConfig,
    ) -> PromptPlan:
        context = self.memory.context_for_turn(conversation, query) if self.memory else TurnContext()
        hits = list(context.hits)
        for retriever in self.retrievers:
            hits.extend(retriever.retrieve_for_chat(query, conversation))
        n_ctx = backend.info.n_ctx
        max_tokens = min(config.max_tokens, n_ctx // 2)
        return build_messages(
            system_prompt=conversation.system_prompt,
            core_memory=context.core_memory,
            summary=context.summary,
            history=[
                # as sent before (references included): an unchanged prefix keeps the KV cache valid
                Message(role="user" if m.role == "user" else "assistant", content=m.sent)
                for m in history
                if m.role in ("user", "assistant") and m.seq > context.history_after_seq
            ],
            user_message=query,
            references=hits,
            count_tokens=backend.count_tokens,
            budget=n_ctx - max_tokens - SAFETY_MARGIN,
        )

    def _save_answer(
        self, conversation, text, config, usage, timings, finish, plan, question
    ) -> StoredMessage:
        # under its question even if another branch was shown meanwhile (then it is shown again)
        return self.conversations.add_message(
            conversation.id,
            "assistant",
            text,
            parent_id=question,
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


def _timings(started: float, first: float | None, ended: float, tokens: int) -> Timings:
    if first is None:
        return Timings(ttft_s=0.0, tokens_per_s=0.0, total_s=ended - started)
    gen_time = ended - first
    rate = (tokens - 1) / gen_time if tokens > 1 and gen_time > 0 else 0.0
    return Timings(ttft_s=first - started, tokens_per_s=rate, total_s=ended - started)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return (line[:57] + "...") if len(line) > 60 else (line or "New chat")
