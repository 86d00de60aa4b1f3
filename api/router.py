"""The API's routes, assembled: /health open, everything under /v1 behind the key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from .auth import bearer_auth
from .catalog import chat_model_ids, embedding_model_ids, model_list
from .chat import create_chat_completion
from .completions import create_completion
from .embeddings import create_embeddings
from .errors import APIError, OpenAIRoute, model_not_found
from .responses import add_routes
from .streams import Gate

if TYPE_CHECKING:
    from engine.factory import Services


def build_router(services: Services, *, api_key: str | None) -> APIRouter:
    gate = Gate()  # shared by chat and completions: both hold a thread while they wait for the model
    v1 = APIRouter(prefix="/v1", route_class=OpenAIRoute, dependencies=[Depends(bearer_auth(api_key))])

    @v1.get("/models")
    async def list_models() -> Response:
        return JSONResponse(model_list(services))

    @v1.get("/models/{model_id:path}")
    async def get_model(model_id: str) -> Response:
        entries = model_list(services)["data"]
        for ids in (chat_model_ids(services), embedding_model_ids(services)):
            if model_id in ids:
                return JSONResponse(next(e for e in entries if e["id"] == ids[0]))
        raise model_not_found(model_id, [e["id"] for e in entries])

    @v1.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await create_chat_completion(request, services, gate)

    @v1.post("/completions")
    async def completions(request: Request) -> Response:
        return await create_completion(request, services, gate)

    add_routes(v1, services, gate)

    @v1.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        return await create_embeddings(request, services)

    @v1.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown(rest: str) -> Response:
        # after the key check: an unknown /v1 path tells a keyless caller nothing
        raise APIError(404, f"Unknown API path /v1/{rest}.", code="unknown_url")

    router = APIRouter(route_class=OpenAIRoute)

    @router.get("/health")
    async def health() -> Response:
        # open to monitors, so it says only whether a model is ready: no names, no paths
        ready = services.models.info is not None
        return JSONResponse(
            {"status": "ok" if ready else "no model loaded"}, status_code=200 if ready else 503
        )

    router.include_router(v1)
    return router
