"""Ask an OpenAI-compatible server what it is: its models, its kind, its context length.

Called once when the remote backend connects. Every failure here is a ModelError
that says what is wrong with the server (down, refusing the key, not OpenAI-compatible),
so a bad URL never replaces a working model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ModelError
from .server_kinds import LLAMA_CPP, OPENAI, ServerKind, kind_from_owner, vllm_kind

if TYPE_CHECKING:
    import httpx

#: context assumed when the server does not say and --backend-n-ctx is not given
#: (llama-cpp-python's and older Ollama's default)
ASSUMED_N_CTX = 2048


@dataclass(frozen=True, kw_only=True)
class ServerFacts:
    kind: ServerKind
    #: the model this backend uses, and every model the server lists
    model: str
    models: tuple[str, ...]
    n_ctx: int
    #: where n_ctx came from, for the page ("the server's /props", "--backend-n-ctx", ...)
    n_ctx_source: str
    #: tokens the server's tokenize endpoint adds to any text (a BOS token), subtracted from counts
    count_offset: int = 0


def probe_server(client: httpx.Client, settings: Settings, url: str) -> ServerFacts:
    """Everything the backend needs to know, from /v1/models and the kind's own endpoints."""
    listing = _get_json(client, "/v1/models", url, required=True)
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("id") for e in entries):
        raise ModelError(
            f"{url}/v1/models did not list models the OpenAI way; is this an OpenAI-compatible server?"
        )
    if not entries:
        raise ModelError(f"The server at {url} serves no model yet. Load one there first.")
    models = tuple(str(e["id"]) for e in entries)
    model = settings.backend_model or models[0]
    if model not in models:
        raise ModelError(f"The server at {url} has no model {model!r}; it offers: {', '.join(models)}.")
    entry = entries[models.index(model)]
    kind, props = _detect_kind(client, url, str(entry.get("owned_by") or ""))
    n_ctx, source = _context_length(settings, kind, entry, props)
    offset = _count_offset(client, model) if kind.tokenizer == "llama-cpp-python" else 0
    return ServerFacts(
        kind=kind, model=model, models=models, n_ctx=n_ctx, n_ctx_source=source, count_offset=offset
    )


def _detect_kind(client: Any, url: str, owned_by: str) -> tuple[ServerKind, dict[str, Any]]:
    """The kind from ``owned_by``; a llama.cpp server also answers /props, vLLM /version."""
    kind = kind_from_owner(owned_by)
    if kind is None or kind is LLAMA_CPP:
        props = _get_json(client, "/props", url)
        if isinstance(props, dict) and isinstance(props.get("default_generation_settings"), dict):
            return LLAMA_CPP, props
    if kind is not None and kind.tokenizer == "vllm":
        version = _get_json(client, "/version", url)
        if isinstance(version, dict) and isinstance(version.get("version"), str):
            return vllm_kind(version["version"]), {}
    return kind or OPENAI, {}


def _context_length(settings: Settings, kind: ServerKind, entry: dict, props: dict) -> tuple[int, str]:
    told, source = None, ""
    slot = props.get("default_generation_settings") or {}
    if isinstance(slot.get("n_ctx"), int):
        told, source = slot["n_ctx"], "the server's /props"
    elif isinstance(entry.get("max_model_len"), int):
        told, source = entry["max_model_len"], "the server's max_model_len"
    flag = settings.backend_n_ctx
    if told and flag:  # the flag may only reserve less than the server holds
        return (flag, "--backend-n-ctx") if flag < told else (told, source)
    if told:
        return told, source
    if flag:
        return flag, "--backend-n-ctx"
    return ASSUMED_N_CTX, f"assumed ({kind.label} does not say; set --backend-n-ctx)"


def _count_offset(client: Any, model: str) -> int:
    try:
        response = client.post("/extras/tokenize/count", json={"input": "", "model": model})
        response.raise_for_status()
        return int(response.json()["count"])
    except Exception:  # noqa: BLE001 - counting then errs by a token at most
        return 0


def _get_json(client: Any, path: str, url: str, *, required: bool = False) -> Any:
    """GET ``path`` as JSON; None when an optional endpoint is missing or odd."""
    import httpx

    try:
        response = client.get(path)
    except httpx.TimeoutException as e:
        raise ModelError(f"The model server at {url} did not answer in time ({type(e).__name__}).") from e
    except httpx.TransportError as e:
        raise ModelError(
            f"Could not reach a model server at {url} ({e}). Is it running, and is the URL right?"
        ) from e
    if response.status_code in (401, 403):
        raise ModelError(
            f"The model server at {url} refused the key (HTTP {response.status_code}). Check --backend-key."
        )
    if response.status_code >= 400:
        if required:
            raise ModelError(
                f"{url}{path} answered HTTP {response.status_code}; is this an OpenAI-compatible server?"
            )
        return None
    try:
        return response.json()
    except ValueError as e:
        if required:
            raise ModelError(f"{url}{path} did not answer JSON; is this an OpenAI-compatible server?") from e
        return None
