"""What each OpenAI-compatible server accepts: sampler names, grammar field, token endpoints.

Pure data and functions (no HTTP): ``remote.py`` detects the kind of server and builds
its request bodies from this table. Servers silently drop fields they do not know, so
the table is also how the page can say which settings a server ignores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import CHAIN_ONLY_SETTINGS, GenerationConfig
from ..errors import GenerationError
from ..types import Message

#: the OpenAI standard sampling fields: every compatible server takes these
_STANDARD = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
#: OpenAI's own logit bias (a {"token id": bias} map), which vLLM and llama.cpp take too
_OPENAI = {**_STANDARD, "logit_bias": "logit_bias"}
_LLAMA_NAMES = {
    **_OPENAI,
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}
#: llama.cpp's server has every sampler Hearth has, under the same names
_LLAMA_SERVER_EXTRAS = {name: name for name in CHAIN_ONLY_SETTINGS}


@dataclass(frozen=True, kw_only=True)
class ServerKind:
    """One family of servers and the request fields it understands."""

    #: shown on the page
    label: str
    #: GenerationConfig field -> request field (fields absent here are ignored by the server)
    samplers: Mapping[str, str]
    #: how a GBNF grammar is sent: "grammar" (llama.cpp), "structured_outputs" or
    #: "guided_grammar" (vLLM, newer / older), None = the server cannot constrain output
    grammar_field: str | None = None
    #: "llama.cpp" (/tokenize + /apply-template), "llama-cpp-python" (/extras/tokenize/count),
    #: "vllm" (/tokenize with text or messages), None = estimate
    tokenizer: str | None = None
    #: the value that turns top-k off (vLLM: -1; older vLLM rejects 0)
    top_k_off: int = 0
    #: True when a new request cuts the running one short (llama-cpp-python's server
    #: interrupts by default, and the cut answer ends as "stop" with no tokens): Hearth then
    #: sends one generation at a time, so its own requests never cut each other
    one_at_a_time: bool = False


LLAMA_CPP = ServerKind(
    label="llama.cpp server",
    samplers={**_LLAMA_NAMES, **_LLAMA_SERVER_EXTRAS, "typical_p": "typical_p", "mirostat_mode": "mirostat"},
    grammar_field="grammar",
    tokenizer="llama.cpp",
)
LLAMA_CPP_PYTHON = ServerKind(
    label="llama-cpp-python server",
    samplers={**_LLAMA_NAMES, "mirostat_mode": "mirostat_mode"},  # it has no typical_p field
    grammar_field="grammar",
    tokenizer="llama-cpp-python",
    one_at_a_time=True,
)
VLLM = ServerKind(
    label="vLLM",
    samplers={**_OPENAI, "top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repetition_penalty"},
    grammar_field="structured_outputs",
    tokenizer="vllm",
    top_k_off=-1,
)
OLLAMA = ServerKind(label="Ollama", samplers=_STANDARD)
OPENAI = ServerKind(label="OpenAI-compatible", samplers=_OPENAI)

#: /v1/models ``owned_by`` values that name the server
_OWNERS = {"llamacpp": LLAMA_CPP, "me": LLAMA_CPP_PYTHON, "vllm": VLLM, "library": OLLAMA, "ollama": OLLAMA}


def kind_from_owner(owned_by: str) -> ServerKind | None:
    return _OWNERS.get(owned_by.strip().lower())


def vllm_kind(version: str) -> ServerKind:
    """vLLM took ``guided_grammar`` until 0.10.2, then ``structured_outputs={"grammar": ...}``."""
    try:
        major, minor, patch = (int("".join(c for c in p if c.isdigit()) or 0) for p in version.split(".")[:3])
    except ValueError:
        return VLLM
    if (major, minor, patch) < (0, 10, 2):
        return dataclasses.replace(VLLM, grammar_field="guided_grammar")
    return VLLM


def ignored_settings(kind: ServerKind) -> tuple[str, ...]:
    """GenerationConfig fields this server drops (max_tokens, seed and stop always go through)."""
    always = {"max_tokens", "seed", "stop"}
    return tuple(
        f.name
        for f in dataclasses.fields(GenerationConfig)
        if f.name not in always and f.name not in kind.samplers
    )


def request_body(
    kind: ServerKind,
    *,
    model: str,
    messages: Sequence[Message],
    config: GenerationConfig,
    max_tokens: int,
    grammar: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming /v1/chat/completions call for this kind of server."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},  # the last event carries exact token counts
        "max_tokens": max_tokens,
    }
    for name, wire in kind.samplers.items():
        value = getattr(config, name)
        if name == "top_k" and value == 0:
            value = kind.top_k_off
        elif name == "logit_bias":
            if not value:
                continue
            value = {str(token): bias for token, bias in value}
        elif name == "samplers":
            value = list(value)
        body[wire] = value
    if config.seed >= 0:
        body["seed"] = config.seed
    if config.stop:
        body["stop"] = list(config.stop)
    if grammar:
        body.update(_grammar_fields(kind, grammar))
    return body


def _grammar_fields(kind: ServerKind, grammar: str) -> dict[str, Any]:
    if kind.grammar_field == "grammar":
        return {"grammar": grammar}
    if kind.grammar_field == "structured_outputs":
        return {"structured_outputs": {"grammar": grammar}}
    if kind.grammar_field == "guided_grammar":
        return {"guided_grammar": grammar}
    raise GenerationError(
        f"This {kind.label} server cannot constrain output with a grammar, which memory tools, JSON "
        "answers (response_format) and forced tool calls need. Turn those off, or use llama.cpp's server "
        "or vLLM."
    )
