"""Which model names the API answers to: /v1/models, and the ``model`` field of each call."""

from __future__ import annotations

import time
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from .errors import model_not_found

if TYPE_CHECKING:
    from engine.factory import Services


def chat_model_ids(services: Services) -> list[str]:
    """The loaded chat model's id first (its file name without .gguf), then its aliases."""
    info = services.models.info
    if info is None:
        return []
    ids: list[str] = []
    path = PurePath(info.path) if info.path else None
    if path is not None and path.suffix.lower() == ".gguf":
        ids += [path.stem, path.name]
    ids.append(info.name)
    return list(dict.fromkeys(i for i in ids if i))


def embedding_model_ids(services: Services) -> list[str]:
    embedder = services.embedder
    return list(dict.fromkeys(i for i in (embedder.name, embedder.model_ref) if i))


def resolve_chat_model(services: Services, requested: str | None) -> str:
    """The id to report for a chat call; no model loaded is a 503, an unknown name a 404."""
    services.models.backend  # raises ModelError (503) when no model is loaded  # noqa: B018
    return _resolve(requested, chat_model_ids(services))


def resolve_embedding_model(services: Services, requested: str | None) -> str:
    return _resolve(requested, embedding_model_ids(services))


def _resolve(requested: str | None, ids: list[str]) -> str:
    # no model named: the one that is loaded (lenient, as llama.cpp's server)
    if requested is None or requested in ids:
        return ids[0]
    raise model_not_found(requested, ids[:1])


def model_list(services: Services) -> dict[str, Any]:
    created = int(time.time())
    entries = [
        {"id": i, "object": "model", "created": created, "owned_by": "hearth"}
        for i in (chat_model_ids(services)[:1] + embedding_model_ids(services)[:1])
    ]
    return {"object": "list", "data": entries}
