"""A backend over any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, ...).

Streams ``/v1/chat/completions`` as server-sent events with httpx; the only module that
talks HTTP to a model server. Unlike the in-process backend there is no lock: the
server queues or batches concurrent requests itself (vLLM's continuous batching).
Stop closes the HTTP stream, which the servers take as "cancel this request".
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import GenerationConfig, Settings
from ..errors import ConfigError, GenerationError
from ..types import Chunk, Message, Usage
from .base import ModelInfo
from .server_kinds import ServerKind, ignored_settings, request_body
from .server_probe import ServerFacts, probe_server
from .token_counts import TokenCounts

if TYPE_CHECKING:
    import httpx

CONNECT_TIMEOUT_S = 5.0
#: tokens a chat template adds around each message, when the server cannot render the template
MESSAGE_OVERHEAD = 8
#: characters per token of the estimate used when the server has no tokenize endpoint
CHARS_PER_TOKEN = 4


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/`` or ``/v1``."""
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"Backend URL {url!r} must look like http://HOST:PORT (the server's OpenAI-compatible API).",
            field="backend_url",
        )
    return url[:-3] if url.endswith("/v1") else url


class RemoteBackend:
    """A model served elsewhere, reached over its OpenAI-compatible HTTP API."""

    #: attached images are not sent to remote servers (yet)
    supports_images = False
    #: raw text completion is not relayed (yet): only the chat API is
    supports_completion = False

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None):
        import httpx  # lazy: keeps `run.py --help` instant

        self._httpx = httpx
        self.url = normalize_url(settings.backend_url or "")
        headers = {"Authorization": f"Bearer {settings.backend_key}"} if settings.backend_key else {}
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(settings.backend_timeout, connect=CONNECT_TIMEOUT_S),
            transport=transport,
        )
        self._counts = TokenCounts(self._count_remote)  # prompt assembly counts the same pieces every turn
        #: held around every request on one_at_a_time servers; a plain lock, as a stream's
        #: generator may be resumed (and closed) on another thread than the one that started it
        self._turn = threading.Lock()
        try:
            self.facts: ServerFacts = probe_server(self._client, settings, self.url)
        except BaseException:
            self._client.close()
            raise
        self.kind: ServerKind = self.facts.kind
        self._tokenizer = self.kind.tokenizer
        self._exact_prompts = True
        #: GenerationConfig fields this server drops; the page lists them
        self.ignored_settings: tuple[str, ...] = ignored_settings(self.kind)
        self.info = ModelInfo(
            name=self.facts.model,
            path=self.url,
            quantization="(server)",
            n_params=0,
            size_bytes=0,
            n_ctx=self.facts.n_ctx,
            n_ctx_train=self.facts.n_ctx,
            n_layers=0,
            chat_template_source=f"{self.kind.label}'s own",
            gpu_offload_supported=False,
            n_gpu_layers=0,
            backend="remote",
        )

    @property
    def models(self) -> list[str]:
        """Every model the server offers (the page lets the user pick one)."""
        return list(self.facts.models)

    @property
    def token_counts_exact(self) -> bool:
        """False: counts are estimates (~4 characters per token); the page says so."""
        return self._tokenizer is not None

    # token counts

    def count_tokens(self, text: str) -> int:
        return self._counts(text)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        try:
            if self._tokenizer == "vllm" and self._exact_prompts:
                body = {"model": self.facts.model, "messages": payload, "add_generation_prompt": True}
                return int(self._post_json("/tokenize", body, "count", "count the prompt's tokens"))
            if self._tokenizer == "llama.cpp" and self._exact_prompts:
                prompt = self._post_json(
                    "/apply-template", {"messages": payload}, "prompt", "render the template"
                )
                body = {"content": prompt, "add_special": True}
                return len(self._post_json("/tokenize", body, "tokens", "count the prompt's tokens"))
        except _MissingEndpointError:
            self._exact_prompts = False  # an older server: estimate around exact per-message counts
        return sum(self.count_tokens(m.content) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD

    def _count_remote(self, text: str) -> int:
        try:
            if self._tokenizer == "llama.cpp":
                body = {"content": text, "add_special": False}
                return len(self._post_json("/tokenize", body, "tokens", "count tokens"))
            if self._tokenizer == "vllm":
                body = {"model": self.facts.model, "prompt": text, "add_special_tokens": False}
                return int(self._post_json("/tokenize", body, "count", "count tokens"))
            if self._tokenizer == "llama-cpp-python":
                # it always adds the BOS token where the model has one: the probe measured that offset
                found = self._post_json("/extras/tokenize/count", {"input": text}, "count", "count tokens")
                return max(0, int(found) - self.facts.count_offset)
        except _MissingEndpointError:
            self._tokenizer = None  # e.g. a proxy in front of the server: estimate from now on
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def _post_json(self, path: str, body: dict[str, Any], key: str, doing: str) -> Any:
        """``key`` of the JSON answer to a POST; _MissingEndpointError when the server lacks ``path``."""
        httpx = self._httpx
        try:
            with self._one_at_a_time():
                response = self._client.post(path, json=body)
            if response.status_code in (404, 405, 501):
                raise _MissingEndpointError(path)
            response.raise_for_status()
            return response.json()[key]
        except httpx.HTTPError as e:
            raise GenerationError(f"Could not {doing} on the model server at {self.url}: {e}") from e
        except (ValueError, KeyError, TypeError) as e:
            raise GenerationError(f"The model server at {self.url} answered {path} with garbage.") from e

    # generation

    def stream_chat(
        self,
        messages: Sequence[Message],
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        images: Sequence[Path] = (),
        logprobs: int | None = None,
        cache_key: str | None = None,  # the server keeps its own prefix cache
        spare_core: bool = False,  # the server's threads are its own
    ) -> Iterator[Chunk]:
        if images:
            raise GenerationError(
                "Images are not sent to a remote model server. Load a local vision GGUF with its "
                "projector to ask about images."
            )
        if logprobs is not None:
            raise GenerationError("Token log-probabilities are not relayed from a remote model server.")
        prompt_tokens = self.count_prompt_tokens(messages)
        room = self.info.n_ctx - prompt_tokens
        if room <= 0:
            raise GenerationError(
                f"The prompt needs about {prompt_tokens} tokens but the server's context holds "
                f"{self.info.n_ctx}. Start a new chat or give the server a larger context."
            )
        body = request_body(
            self.kind,
            model=self.facts.model,
            messages=messages,
            config=config,
            max_tokens=min(config.max_tokens, room),
            grammar=grammar,
        )
        yield from self._stream(body, prompt_tokens, cancel)

    def stream_completion(
        self,
        prompt: str,
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Iterator[Chunk]:
        raise GenerationError(
            f"Raw text completion is not relayed to the model server at {self.url}; use chat completions."
        )

    @contextmanager
    def _one_at_a_time(self) -> Iterator[None]:
        """On servers where any request cuts a running stream short (llama-cpp-python's: even a
        token count does), Hearth's own requests wait for each other."""
        if not self.kind.one_at_a_time:
            yield
            return
        # a stream dropped without being closed would hold the lock: past the read timeout,
        # go ahead anyway (the older request is then cut, as the server would do unasked)
        held = self._turn.acquire(timeout=self._client.timeout.read or -1)
        try:
            yield
        finally:
            if held:
                self._turn.release()

    def _stream(self, body: dict[str, Any], prompt_tokens: int, cancel) -> Iterator[Chunk]:
        httpx = self._httpx
        try:
            with (
                self._one_at_a_time(),
                self._client.stream("POST", "/v1/chat/completions", json=body) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    raise GenerationError(self._refusal(response))
                # leaving this block (Stop, an error, a closed generator) closes the connection,
                # which the server takes as a cancelled request
                yield from self._events(response, prompt_tokens, cancel)
        except httpx.TimeoutException as e:
            raise GenerationError(
                f"The model server at {self.url} stopped answering ({type(e).__name__}). It may be "
                "overloaded; the text so far is kept. Try again, or raise --backend-timeout."
            ) from e
        except httpx.TransportError as e:
            raise GenerationError(
                f"Lost the connection to the model server at {self.url} ({e or type(e).__name__}). "
                "Is it still running? The text so far is kept."
            ) from e

    def _events(self, response, prompt_tokens: int, cancel) -> Iterator[Chunk]:
        finish, produced, usage, ended = None, 0, None, False
        thinking = _Thinking()
        for line in response.iter_lines():
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            data = _sse_data(line, self.url)
            if data is None:
                continue
            if data == "[DONE]":
                ended = True
                break
            event = _parse_event(data, self.url)
            usage = event.get("usage") or usage
            for choice in event["choices"][:1]:
                text = thinking.text(choice.get("delta") or {})
                if text:
                    produced += 1  # one streamed event per token on llama.cpp and vLLM
                    yield Chunk(text=text)
                finish = choice.get("finish_reason") or finish
        if finish is None and not ended:
            raise GenerationError(
                f"The model server at {self.url} ended the answer mid-stream. The text so far is kept."
            )
        if finish is None and self.kind.one_at_a_time:
            # [DONE] with no finish reason: llama-cpp-python's server cut this answer to serve
            # another request (Hearth sends one at a time, so another client is using it)
            raise GenerationError(
                f"The model server at {self.url} cut the answer short to serve another request. "
                "The text so far is kept; try again, or start that server with --interrupt_requests False."
            )
        usage = self._usage(usage, prompt_tokens, produced)
        yield Chunk(text=thinking.close(), finish_reason=_finish(finish), usage=usage)

    def _usage(self, usage: dict[str, Any] | None, prompt_tokens: int, produced: int) -> Usage:
        usage = usage if isinstance(usage, dict) else {}
        details = usage.get("prompt_tokens_details") or {}
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or prompt_tokens),
            completion_tokens=int(usage.get("completion_tokens") or produced),
            cached_tokens=int(details.get("cached_tokens") or 0),
            n_ctx=self.info.n_ctx,
        )

    def _refusal(self, response) -> str:
        detail = _error_detail(response)
        if response.status_code in (401, 403):
            return f"The model server at {self.url} refused the key (HTTP {response.status_code}). Check --backend-key."
        return f"The model server at {self.url} refused the request (HTTP {response.status_code}): {detail}"

    def settle(self, cache_key: str | None) -> int:
        return 0  # the server keeps its own prompt cache

    def close(self) -> None:
        self._client.close()


class _Thinking:
    """Servers that parse reasoning (vLLM, llama.cpp) stream it as ``reasoning_content``: put it
    back between <think> tags, which the page shows as a collapsible block."""

    def __init__(self) -> None:
        self.open = False

    def text(self, delta: dict[str, Any]) -> str:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        content = delta.get("content") or ""
        out = ""
        if reasoning:
            out += ("" if self.open else "<think>") + str(reasoning)
            self.open = True
        if content:
            out += self.close() + str(content)
        return out

    def close(self) -> str:
        was, self.open = self.open, False
        return "</think>" if was else ""


class _MissingEndpointError(Exception):
    """The server has no such endpoint (an older version, or a proxy that passes only /v1)."""


def _sse_data(line: str, url: str) -> str | None:
    """The payload of a ``data:`` line; None for blank lines, comments and other fields."""
    if not line or line.startswith(":"):
        return None
    if line.startswith("data:"):
        return line[5:].strip()
    if line.split(":", 1)[0] in ("event", "id", "retry"):
        return None
    raise GenerationError(
        f"The model server at {url} sent something that is not an event stream: {line[:80]!r}"
    )


def _parse_event(data: str, url: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError as e:
        raise GenerationError(
            f"The model server at {url} sent malformed JSON in its stream: {data[:80]!r}"
        ) from e
    if not isinstance(event, dict):
        raise GenerationError(f"The model server at {url} sent an unexpected event: {data[:80]!r}")
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise GenerationError(f"The model server at {url} failed while generating: {message}")
    if not isinstance(event.get("choices"), list):
        raise GenerationError(f"The model server at {url} sent an event without choices: {data[:80]!r}")
    return event


def _finish(reason: str | None) -> str:
    if reason in (None, "eos", "stop_sequence"):
        return "stop"
    return reason


def _error_detail(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "(empty answer)"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:300]
    return str(error)[:300]
