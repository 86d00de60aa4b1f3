"""The guard in front of every route: Host, Origin, body size, blocked routes, login backoff,
and the security headers (Content-Security-Policy and friends) on every response.

A plain ASGI middleware (no gradio import), so it wraps the Gradio page, its API, its
upload and file routes, websockets, and any router mounted beside them (the ``/v1`` API)
alike. Why each rule exists:

- Host: any web page can make the browser talk to 127.0.0.1. With DNS rebinding a page on
  ``attacker.example`` resolves its own name to 127.0.0.1 and reads our answers as
  same-origin. Only the names the server was started for are served.
- Origin: a foreign page may still send requests (forms, fetch with no-cors) that change
  state. A request whose Origin (or, without one, Referer) is not ours is refused. API
  clients send neither, so they pass; the Host rule still applies to them.
- Body size: uploads are refused above ``max_body_bytes``, by Content-Length up front and
  by counting the bytes that actually arrive.
- Gradio routes that fetch URLs for the client (``/proxy=``, ``/file=https://...``, file
  inputs whose path is a URL or lies outside the upload folder) and features Hearth does
  not use are refused: the server must not become a way to reach the network or read
  arbitrary files.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import refusals

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Gradio routes Hearth never uses; several fetch URLs or store data (run history, vibe editor)
BLOCKED_PREFIXES = (
    "/gradio_api/proxy=",
    "/gradio_api/runs",
    "/gradio_api/run-history",
    "/gradio_api/vibe-",
    "/gradio_api/undo-vibe-edit",
    "/gradio_api/process_recording",
    "/gradio_api/profiling",
    "/gradio_api/dev/",
    "/gradio_api/mcp",
    "/gradio_api/deep_link",
    "/monitoring",
)
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
#: JSON bodies Gradio turns into function inputs (file objects in them are copied or fetched)
PAYLOAD_PREFIXES = ("/gradio_api/queue/join", "/gradio_api/run/", "/gradio_api/api/", "/gradio_api/call/")
LOGIN_PATHS = ("/login", "/login/")
#: the browser may load scripts, styles, images, fonts and media only from this server, and
#: send data only to it. Styles need 'unsafe-inline' (Svelte sets style attributes and Gradio
#: injects its theme as <style>); scripts are allowed by nonce, so injected markup cannot run.
#: 'unsafe-eval': Gradio runs the ``js=`` of events through the AsyncFunction constructor.
#: ``{scripts}``: hashes of the page's own ``head`` scripts, which Gradio inserts at run time.
CSP_TEMPLATE = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'unsafe-eval'{scripts}; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; media-src 'self' data: blob:; worker-src 'self' blob:; frame-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
STATIC_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])")
_HEAD_TAG = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host header values the server answers: loopback names and ``host`` with the port, and
    each ``extra`` name as given (a bare name also matches without a port, for a reverse proxy)."""
    names = {*LOOPBACK_NAMES}
    if host not in ("0.0.0.0", "::", ""):  # a wildcard is where to listen, not a name to be called
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    hosts = {f"{name}:{port}".lower() for name in names}
    for name in extra:
        name = name.strip().lower()
        if name:
            hosts.add(name)
            if not re.search(r":\d+$", name):
                hosts.add(f"{name}:{port}")
    return frozenset(hosts)


@dataclass
class LoginThrottle:
    """Per-client backoff on failed logins: after ``free`` failures each attempt waits 1, 2, 4 …
    up to ``max_delay`` seconds first, one attempt at a time, so parallel guesses queue up.
    Waiting is ``asyncio.sleep``: other requests are served meanwhile."""

    free: int = 3
    max_delay: float = 30.0
    max_clients: int = 10_000
    failures: dict[str, int] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def delay(self, client: str) -> float:
        extra = self.failures.get(client, 0) - self.free
        return 0.0 if extra < 0 else min(2.0**extra, self.max_delay)

    def lock(self, client: str) -> asyncio.Lock:
        if len(self.locks) > self.max_clients:  # bounded memory under a flood of addresses
            self.locks = {k: v for k, v in self.locks.items() if v.locked()}
            self.failures = {k: v for k, v in self.failures.items() if k in self.locks}
        return self.locks.setdefault(client, asyncio.Lock())

    def record(self, client: str, ok: bool) -> None:
        if ok:
            self.failures.pop(client, None)
        else:
            self.failures[client] = self.failures.get(client, 0) + 1


@dataclass(frozen=True)
class GuardConfig:
    hosts: frozenset[str]
    max_body_bytes: int
    upload_root: Path
    #: extra script-src sources, e.g. "'sha256-...'" of a trusted inline script
    script_sources: tuple[str, ...] = ()
    csp_template: str = CSP_TEMPLATE
    #: JavaScript run first on the page, before Gradio's modules (it gets the nonce)
    first_script: str = ""

    def csp(self, nonce: str) -> str:
        scripts = "".join(" " + source for source in self.script_sources)
        return self.csp_template.format(nonce=nonce, scripts=scripts)


class Guard:
    """ASGI middleware enforcing GuardConfig; see the module docstring."""

    def __init__(self, app: ASGIApp, config: GuardConfig, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.config = config
        self.throttle = throttle or LoginThrottle()
        self.upload_root = os.path.realpath(config.upload_root)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            await _refuse(scope, send, *refusal)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        if _wants_html(headers):  # the page is rewritten to carry the nonce: no compression
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]}
        send = _SecureSend(send, self.config.csp(nonce), nonce, self.config.hosts, self.config.first_script)
        if scope["method"] == "POST" and scope["path"] in LOGIN_PATHS:
            await self._login(scope, receive, send)
        elif scope["method"] == "POST" and scope["path"].startswith(PAYLOAD_PREFIXES):
            await self._checked_payload(scope, receive, send)
        else:
            await _limited(self.app, scope, receive, send, self.config.max_body_bytes)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the request must not reach the app, else None."""
        host = headers.get("host", "")
        if host.lower() not in self.config.hosts:
            return 400, refusals.unknown_host(host)
        origin = headers.get("origin")
        if origin is not None and not self._own(origin):
            return 403, refusals.foreign_origin(origin)
        changes_state = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        if changes_state and origin is None:
            referer = headers.get("referer")
            if referer is not None and not self._own(referer):
                return 403, refusals.CROSS_SITE
            if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
                return 403, refusals.CROSS_SITE
        path = scope["path"].lower()
        if path.startswith(BLOCKED_PREFIXES):
            return 404, "Not available in Hearth."
        if any(path.startswith(route) and _is_url(path[len(route) :]) for route in FILE_ROUTES):
            return 403, "Hearth does not fetch URLs."
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.config.max_body_bytes:
            return 413, f"Too large: the limit is {self.config.max_body_bytes // 2**20} MB (--max-upload-mb)."
        return None

    def _own(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and parts.netloc.lower() in self.config.hosts

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = (scope.get("client") or ("?", 0))[0]
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        async with self.throttle.lock(client):
            await asyncio.sleep(self.throttle.delay(client))
            await _limited(self.app, scope, receive, watch, self.config.max_body_bytes)
            self.throttle.record(client, ok=bool(status) and status[0] < 400)

    async def _checked_payload(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a JSON body whole (it is small), refuse file objects that Gradio would fetch
        from a URL or copy from outside the upload folder, then replay it to the app."""
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.config.max_body_bytes:
                await _refuse(scope, send, 413, "Too large.")
                return
        bad = self._foreign_file(body)
        if bad is not None:
            await _refuse(scope, send, 403, f"File not allowed: {bad[:200]}")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _foreign_file(self, body: bytes) -> str | None:
        try:
            payload = json.loads(body)
        except ValueError:
            return None  # not JSON: the app refuses it itself
        for path in _file_paths(payload):
            real = os.path.realpath(os.path.abspath(path)) if not _is_url(path) else ""
            if not real or os.path.commonpath([real, self.upload_root]) != self.upload_root:
                return path
        return None


class _SecureSend:
    """Adds the security headers to the response; puts the nonce into the page's scripts;
    drops CORS headers naming anything but this server."""

    def __init__(
        self, send: Send, csp: str, nonce: str, hosts: frozenset[str], first_script: str = ""
    ) -> None:
        self.send, self.csp, self.nonce, self.hosts = send, csp, nonce.encode(), hosts
        self.first = b"<script>" + first_script.encode() + b"</script>" if first_script else b""
        self.start: Message | None = None
        self.html = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if self._keep(k, v)]
            headers += [*STATIC_HEADERS, (b"content-security-policy", self.csp.encode())]
            message = {**message, "headers": headers}
            if _is_plain_html(headers):
                self.start = message  # held until the whole page is here
                return
            await self.send(message)
        elif message["type"] == "http.response.body" and self.start is not None:
            self.html += message.get("body", b"")
            if not message.get("more_body", False):
                await self._send_page()
        else:
            await self.send(message)

    def _keep(self, name: bytes, value: bytes) -> bool:
        if name.lower() != b"access-control-allow-origin":
            return True
        return urlsplit(value.decode("latin-1")).netloc.lower() in self.hosts

    async def _send_page(self) -> None:
        page = _HEAD_TAG.sub(lambda m: m.group(0) + self.first, bytes(self.html), count=1)
        page = _SCRIPT_TAG.sub(b'<script nonce="' + self.nonce + b'"', page)
        start = self.start or {}
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(page)).encode()))
        await self.send({**start, "headers": headers})
        await self.send({"type": "http.response.body", "body": page, "more_body": False})


async def _limited(app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """Run the app, refusing the request once more than ``limit`` body bytes have arrived
    (Content-Length was already checked; this catches chunked bodies and liars)."""
    received, too_large, started = 0, False, False

    async def counted() -> Message:
        nonlocal received, too_large
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                too_large = True
                return {"type": "http.disconnect"}  # the app stops reading; we answer 413
        return message

    async def guarded(message: Message) -> None:
        nonlocal started
        if too_large:
            return
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, counted, guarded)
    except Exception:
        if not too_large:
            raise
    if too_large and not started:
        await _refuse(scope, send, 413, f"Too large: the limit is {limit // 2**20} MB (--max-upload-mb).")


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": reason[:100]})
        return
    body = json.dumps(refusals.body(status, reason)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [*STATIC_HEADERS, (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def script_hashes(html: str) -> tuple[str, ...]:
    """CSP sources for the inline scripts of trusted HTML (the page's ``head``)."""
    bodies = re.findall(r"<script\b[^>]*>(.*?)</script\s*>", html or "", re.IGNORECASE | re.DOTALL)
    return tuple(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)


def _headers(scope: Scope) -> dict[str, str]:
    # a repeated header counts by its first value; Host and Origin are never legitimately repeated
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _wants_html(headers: dict[str, str]) -> bool:
    return "text/html" in headers.get("accept", "") or headers.get("sec-fetch-dest") == "document"


def _is_plain_html(headers: list[tuple[bytes, bytes]]) -> bool:
    found = {k.lower(): v.lower() for k, v in headers}
    return found.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in found


def _is_url(value: str) -> bool:
    return bool(re.match(r"^\s*([a-z][a-z0-9+.-]*:|//|\\\\)", value, re.IGNORECASE))


def _file_paths(value: object) -> Iterable[str]:
    """Every ``path`` of a Gradio file object ({"path": ..., "meta": {"_type": "gradio.FileData"}})."""
    if isinstance(value, dict):
        meta = value.get("meta")
        if (
            isinstance(value.get("path"), str)
            and isinstance(meta, dict)
            and meta.get("_type") == "gradio.FileData"
        ):
            yield value["path"]
        for item in value.values():
            yield from _file_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from _file_paths(item)
