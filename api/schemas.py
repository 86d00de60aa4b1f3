"""Request bodies of the OpenAI-compatible API (pydantic), and their mapping onto the engine.

Unknown top-level fields are ignored, as OpenAI-compatible servers do (clients send ``user``,
``metadata`` ...). Hearth's own samplers (``top_k``, ``min_p``, ``typical_p``,
``repeat_penalty``, mirostat, DRY, XTC, top-n-sigma, dynamic temperature, ``samplers``) are
accepted as extra fields under llama.cpp's server names; ``logit_bias`` in both forms.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from engine.config import CHAIN_ONLY_SETTINGS, GenerationConfig


def _upper_bound(name: str) -> int:
    """The largest value GenerationConfig takes for the numeric setting ``name``."""
    return int(next(f for f in GenerationConfig.numeric_fields() if f.name == name).metadata["max"])


#: the longest answer GenerationConfig allows; a bigger ask means "until the context is full"
MAX_TOKENS_CAP = _upper_bound("max_tokens")
#: the largest seed GenerationConfig takes
MAX_SEED = _upper_bound("seed")
#: OpenAI's limit on alternatives per token
MAX_TOP_LOGPROBS = 20

#: request fields that go straight into GenerationConfig (same names as llama.cpp's server)
SAMPLER_FIELDS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
    "logit_bias",
    *CHAIN_ONLY_SETTINGS,
)


_M = TypeVar("_M", bound=BaseModel)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class CalledFunction(_Lenient):
    name: str
    #: a JSON text, as OpenAI sends it (some clients send the object itself)
    arguments: str | dict[str, Any] = ""


class ToolCallIn(_Lenient):
    """A call the assistant made earlier in the conversation."""

    id: str | None = None
    type: str = "function"
    function: CalledFunction


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionSpec(_Lenient):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    description: str = ""
    #: the arguments' JSON Schema; None takes no arguments
    parameters: dict[str, Any] | None = None


class ToolSpec(_Lenient):
    type: Literal["function"] = "function"
    function: FunctionSpec


class FunctionName(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: Literal["function"] = "function"
    function: FunctionName


class JSONSchemaSpec(_Lenient):
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None
    #: llama.cpp's server also takes a schema with "json_object"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class StreamOptions(_Lenient):
    include_usage: bool = False


class HearthOptions(BaseModel):
    """The opt-in to a whole Hearth turn: a saved conversation, memory, retrieval with sources."""

    # typos here would silently drop the user's knowledge from the answer: refuse them
    model_config = ConfigDict(extra="forbid")

    #: continue this saved conversation; None starts a new one
    conversation_id: str | None = None
    #: memory (core blocks, summaries, recalled and archival memories) feeds the turn
    memory: bool = True
    #: document collections the conversation draws on; None keeps the conversation's own
    collections: list[str] | None = None


class GenerationRequest(_Lenient):
    """Fields shared by /v1/chat/completions and /v1/completions."""

    model: str | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repeat_penalty: float | None = None
    mirostat_mode: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    dynatemp_range: float | None = None
    dynatemp_exponent: float | None = None
    top_n_sigma: float | None = None
    xtc_probability: float | None = None
    xtc_threshold: float | None = None
    dry_multiplier: float | None = None
    dry_base: float | None = None
    dry_allowed_length: int | None = None
    dry_penalty_last_n: int | None = None
    #: OpenAI's ``{"token id": bias}`` or llama.cpp's ``[[token id, bias], ...]``
    logit_bias: dict[str, float] | list[tuple[int, float]] | None = None
    #: llama.cpp's sampler order, e.g. ["penalties", "top_k", "temperature"] (or "a;b;c")
    samplers: list[str] | str | None = None

    def answer_limit(self) -> int | None:
        return self.max_tokens

    def generation_config(self) -> GenerationConfig:
        """The engine's settings for this call; out-of-range values raise ConfigError (a 400)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in SAMPLER_FIELDS}
        if self.seed is not None and not -1 <= self.seed <= MAX_SEED:
            # OpenAI takes any 64-bit seed (clients send random ones): fold it into llama.cpp's range,
            # the same seed always to the same value, so it still reproduces an answer
            values["seed"] = self.seed % (MAX_SEED + 1)
        limit = self.answer_limit()
        # no limit, as with OpenAI, means until the context is full (the backend clamps to it)
        values["max_tokens"] = MAX_TOKENS_CAP if limit is None else min(limit, MAX_TOKENS_CAP)
        if self.stop is not None:
            values["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        return GenerationConfig.from_values({k: v for k, v in values.items() if v is not None})

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(GenerationRequest):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    #: the deprecated form of tools: refused with a pointer to tools, never silently ignored
    functions: list[Any] | None = None
    function_call: Any = None
    hearth: HearthOptions | None = None

    def answer_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


#: token ids in place of text (OpenAI takes them; they are refused here with a clear message)
TokenArrays = list[int] | list[list[int]]


class CompletionRequest(GenerationRequest):
    prompt: str | list[str] | TokenArrays
    #: legacy completions: alternatives per token (0-20); None = no logprobs
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    #: candidates generated server-side to return the best; only 1 (one answer per call)
    best_of: int | None = None


class EmbeddingRequest(_Lenient):
    input: str | list[str] | TokenArrays
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


async def read_json(request: Any, model: type[_M], *, max_bytes: int) -> _M:
    """The request body parsed as ``model``: 413 over ``max_bytes``, 400 for bad JSON or fields."""
    from pydantic import ValidationError

    from .errors import bad_request, validation_error

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for part in request.stream():  # a chunked body has no length to check up front
        body += part
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    if not body:
        raise bad_request("The request needs a JSON body.")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as e:
        invalid = [err for err in e.errors() if err.get("type") == "json_invalid"]
        if invalid:  # the parser's words say where ("... at line 1 column 7")
            detail = str(invalid[0].get("msg", "")).removeprefix("Invalid JSON: ")
            raise bad_request(f"The request body is not valid JSON: {detail}.") from e
        raise validation_error(list(e.errors())) from e


def _too_large(max_bytes: int) -> Exception:
    from .errors import APIError

    return APIError(
        413, f"The request body is larger than {max_bytes // (1024 * 1024)} MiB.", code="request_too_large"
    )
