"""POST /v1/embeddings: the configured text embedder (all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, cast

import anyio.to_thread
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from .catalog import resolve_embedding_model
from .errors import bad_request
from .schemas import EmbeddingRequest, read_json
from .streams import MAX_BODY_BYTES

if TYPE_CHECKING:
    from engine.factory import Services

#: most texts in one call (OpenAI's limit)
MAX_INPUTS = 2048


async def create_embeddings(request: Request, services: Services) -> Response:
    body = await read_json(request, EmbeddingRequest, max_bytes=MAX_BODY_BYTES)
    model = resolve_embedding_model(services, body.model)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if any(not isinstance(t, str) for t in texts):
        raise bad_request(
            f"Send the texts themselves: {model} cannot read another tokenizer's token ids. (LangChain's "
            "OpenAIEmbeddings sends token ids unless it is made with check_embedding_ctx_length=False.)",
            param="input",
        )
    if not texts or len(texts) > MAX_INPUTS:
        raise bad_request(f"Send between 1 and {MAX_INPUTS} texts.", param="input")
    if any(not t for t in texts):
        raise bad_request("Texts to embed must not be empty.", param="input")
    embedder = services.embedder
    strings = cast(list[str], texts)

    def embed() -> tuple[list[list[float]], int]:
        vectors = embedder.embed(strings)
        return vectors, sum(embedder.count_tokens(t) for t in strings)

    # encoding is CPU-bound (and loads the model on first use): never on the event loop
    vectors, tokens = await anyio.to_thread.run_sync(embed)
    if body.dimensions is not None and vectors and body.dimensions != len(vectors[0]):
        raise bad_request(
            f"{model} makes {len(vectors[0])}-dimensional vectors; it cannot shorten them.",
            param="dimensions",
        )
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends (the openai client asks for it)
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
