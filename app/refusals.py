"""What the guard (``security.Guard``) answers when it refuses a request: the reasons,
which say what to do about them, in OpenAI's error shape."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

CROSS_SITE = "Cross-site request refused: another web page may not change anything in Hearth."


def body(status: int, reason: str) -> dict[str, dict[str, str | None]]:
    """OpenAI's error shape, which the ``/v1`` clients (the openai SDK, LiteLLM, the AI SDK) read
    their message from: a bare string there reached the user as "Error code: 400" and nothing else.
    The page's own requests never see a refusal unless something is wrong, and read it alike."""
    kind = {403: "permission_error", 404: "not_found_error"}.get(status, "invalid_request_error")
    return {"error": {"message": reason, "type": kind, "param": None, "code": None}}


def unknown_host(host: str) -> str:
    name = host[:100] or "(none)"
    bare = re.sub(r":\d+$", "", name)
    return (
        f"Unknown Host {name!r}: this server answers only to the names it was started for (a guard "
        f"against DNS rebinding). If you reach it by that name on purpose (a container calling "
        f"host.docker.internal, a LAN name, a reverse proxy), start Hearth with --allowed-host {bare} "
        f"(or HEARTH_ALLOWED_HOSTS)."
    )


def foreign_origin(origin: str) -> str:
    return (
        f"Cross-origin request refused: a web page from {origin[:100]!r} may not call Hearth (a guard "
        f"against the sites you visit). API clients outside a browser send no Origin header; a web "
        f"app you trust can be named with --allowed-host {urlsplit(origin).netloc[:100] or origin[:100]}."
    )
