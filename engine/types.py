"""Small typed values that flow between the engine's parts and out to the UI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, kw_only=True)
class Message:
    """One chat message as the model sees it."""

    role: Role
    content: str


@dataclass(frozen=True, kw_only=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: prompt tokens served from the reused KV-cache prefix (not re-evaluated)
    cached_tokens: int = 0
    n_ctx: int = 0


@dataclass(frozen=True, kw_only=True)
class TokenLogprob:
    """One generated token and its log-probability under the model (natural log, <= 0)."""

    token: str
    #: the token's raw bytes (a token may hold part of a UTF-8 character)
    token_bytes: bytes
    logprob: float
    #: the most likely alternatives at this position, most likely first
    top: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """A piece of streamed model output."""

    text: str
    #: set on the last chunk: "stop" (EOS or stop string), "length" (max_tokens), "cancelled"
    finish_reason: str | None = None
    #: set on the last chunk
    usage: Usage | None = None
    #: the tokens behind this chunk, when logprobs were asked for
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Timings:
    #: seconds from request to first streamed text
    ttft_s: float = 0.0
    #: completion tokens per second, measured after the first token
    tokens_per_s: float = 0.0
    total_s: float = 0.0

    @classmethod
    def measured(cls, started: float, first: float | None, ended: float, tokens: int) -> Timings:
        """From clock readings: the request, the first text (None: there was none), the end."""
        if first is None:
            return cls(ttft_s=0.0, tokens_per_s=0.0, total_s=ended - started)
        gen_time = ended - first
        rate = (tokens - 1) / gen_time if tokens > 1 and gen_time > 0 else 0.0
        return cls(ttft_s=first - started, tokens_per_s=rate, total_s=ended - started)


@dataclass(frozen=True, kw_only=True)
class Hit:
    """One retrieved item (a document chunk, an image, a memory)."""

    kind: Literal["chunk", "image", "memory", "recall"]
    id: str
    text: str
    score: float
    source: str = ""
    page: int | None = None
    start: int | None = None
    end: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: where in its document a chunk lies, as a reader would say it ("page 3", "slide 2: Fares",
    #: "sheet Staff", "Guide > Setup"); empty when the document has no pages or headings
    location: str = ""


# Stream events: what ChatService.stream_turn yields.


@dataclass(frozen=True, kw_only=True)
class TurnStarted:
    conversation_id: str
    user_message_id: str
    #: this turn's own id: ``ChatService.stop(conversation_id, turn_id)`` stops only it
    turn_id: str = ""


@dataclass(frozen=True, kw_only=True)
class TextDelta:
    text: str


@dataclass(frozen=True, kw_only=True)
class Sources:
    hits: list[Hit]


@dataclass(frozen=True, kw_only=True)
class ContextReport:
    """How the prompt's token budget was spent (section name -> tokens)."""

    sections: dict[str, int]
    budget: int
    n_ctx: int


@dataclass(frozen=True, kw_only=True)
class Done:
    conversation_id: str
    message_id: str
    text: str
    finish_reason: str
    usage: Usage
    timings: Timings
    model: str
    #: what could not take part in this turn, e.g. "documents unavailable: <reason>" (status line)
    notes: tuple[str, ...] = ()


Event = TurnStarted | TextDelta | Sources | ContextReport | Done


@dataclass(frozen=True, kw_only=True)
class FileResult:
    """The outcome of adding one file (a document or an image)."""

    path: str
    #: "added", "replaced", "unchanged", "skipped" (left out on purpose, e.g. a link out of the folder) or "error"
    status: Literal["added", "replaced", "unchanged", "skipped", "error"]
    #: for errors, what went wrong and what to do; otherwise a short summary
    message: str = ""
    #: the stored document or image id
    id: str | None = None
    #: chunks indexed (documents) or 1 (images)
    items: int = 0
