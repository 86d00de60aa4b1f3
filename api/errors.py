"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for every failure.

Each route runs inside ``OpenAIRoute``, which turns our errors, the engine's typed errors and
FastAPI's own into that shape with OpenAI's status codes. Unexpected exceptions become a 500
that says nothing about the internals (the traceback goes to the server log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from engine.errors import (
    ConfigError,
    EngineError,
    GenerationError,
    ModelError,
    NotFoundError,
    RetrievalError,
)

log = logging.getLogger("hearth.api")


class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def context_exceeded(needed: int, n_ctx: int, *, param: str) -> APIError:
    """OpenAI's wording (clients such as LiteLLM recognise a full context by it), then what to do."""
    return APIError(
        400,
        f"This model's maximum context length is {n_ctx} tokens. However, your {param} resulted in "
        f"{needed} tokens. Shorten the {param}, or start Hearth with a larger --n-ctx.",
        param=param,
        code="context_length_exceeded",
    )


def not_text(kind: str) -> str:
    """A content part the API cannot take (an image, audio, a file), said so an app's user
    who attached an image learns why."""
    return (
        f"Only text parts are supported here, and this part is {kind[:40]!r}: Hearth's API does not "
        f"take images, audio or files. Send the text instead (images can be sent on Hearth's page, "
        f"with a vision model loaded with --mmproj)."
    )


def model_not_found(model: str, known: list[str]) -> APIError:
    return APIError(
        404,
        f"The model {model!r} does not exist here. Models: {', '.join(known) or 'none loaded'}.",
        param="model",
        code="model_not_found",
    )


def from_exception(e: Exception) -> APIError:
    """The OpenAI-shaped error for any exception a route let out."""
    if isinstance(e, APIError):
        return e
    if isinstance(e, ConfigError):
        return APIError(400, str(e), param=e.field, code="invalid_value")
    if isinstance(e, NotFoundError):
        return APIError(404, str(e), code="not_found")
    if isinstance(e, ModelError):
        return APIError(503, str(e), type="server_error", code="model_not_loaded")
    if isinstance(e, RetrievalError):
        return APIError(503, str(e), type="server_error", code="service_unavailable")
    if isinstance(e, (GenerationError, EngineError)):
        return APIError(500, str(e), type="server_error", code="engine_error")
    if isinstance(e, RequestValidationError):
        return validation_error(list(e.errors()))
    if isinstance(e, HTTPException):
        return APIError(e.status_code, str(e.detail), type=_type_for(e.status_code), headers=e.headers)
    log.exception("unexpected error in an API call", exc_info=e)
    return APIError(500, "The server failed while handling this request.", type="server_error")


def validation_error(errors: list[Any]) -> APIError:
    """Pydantic's 422 as OpenAI's 400, naming the first bad field."""
    if not errors:
        return bad_request("The request body is invalid.")
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body" and not _union_tag(part)]
    param = ".".join(loc) or None
    where = f" ({param})" if param else ""
    return bad_request(f"Invalid request{where}: {first.get('msg', 'invalid value')}.", param=param)


def _union_tag(part: object) -> bool:
    """Pydantic names the member of a union that failed in the location ("content.str",
    "tool_choice.literal['none','auto','required']"): its internals, not a field a client sent.
    Fields are lower-case names or list indexes; members are types, models or validators."""
    if isinstance(part, int):
        return False
    text = str(part)
    return text in _TYPE_NAMES or "[" in text or "-" in text or text[:1].isupper()


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "none", "dict", "list", "any"})


def _type_for(status: int) -> str:
    return "server_error" if status >= 500 else "invalid_request_error"


class OpenAIRoute(APIRoute):
    """A route whose every failure, its dependencies' included, is answered in OpenAI's shape
    (a router cannot install app-wide exception handlers, so the route class does it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as e:  # every error leaves in OpenAI's shape
                return from_exception(e).response()

        return handle
