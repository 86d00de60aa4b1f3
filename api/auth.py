"""Bearer-key check for every /v1 route (a FastAPI dependency)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request

from .errors import APIError


def bearer_auth(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    """A dependency that lets a request through only with ``Authorization: Bearer <api_key>``.

    With no key configured every request passes (the server refuses to listen beyond
    loopback then: see ``api.keys.require_api_key_for``).
    """
    expected = api_key.encode("utf-8") if api_key is not None else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken says nothing about how much of the key matched
        given = token.strip().encode("utf-8") if scheme.lower() == "bearer" else b""
        if not hmac.compare_digest(given, expected):
            message = (
                "Incorrect API key provided." if given else "Missing API key: send Authorization: Bearer KEY."
            )
            raise APIError(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": 'Bearer realm="hearth"'}
            )

    return check
