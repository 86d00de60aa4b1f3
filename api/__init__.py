"""Hearth's OpenAI-compatible HTTP API (``/v1/...`` and ``/health``), as a FastAPI router.

``build_router(services, api_key=...)`` returns the router the web server mounts next to the
page. Nothing here imports gradio. Importing this package stays cheap (FastAPI loads only when
the router is built), so the command line can use ``api.keys`` for its flags.

Wiring, in ``serve``::

    key = api_key_from(args)                 # --api-key-file, --api-key or $HEARTH_API_KEY
    require_api_key_for(args.host, key)      # ConfigError beyond loopback without a key
    app = create_app(services, ..., routers=[build_router(services, api_key=key)])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .keys import add_api_arguments, api_key_from, require_api_key_for

if TYPE_CHECKING:
    from fastapi import APIRouter

    from engine.factory import Services

__all__ = ["add_api_arguments", "api_key_from", "build_router", "require_api_key_for"]


def build_router(services: Services, *, api_key: str | None) -> APIRouter:
    """The API's routes over ``services`` (engine.factory.Services); ``api_key`` None = open."""
    from .router import build_router as build

    return build(services, api_key=api_key)
