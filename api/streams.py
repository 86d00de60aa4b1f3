"""Blocking model work on its own thread, awaited from the event loop.

A generation holds the model lock for seconds; run on the event loop it would freeze every
other request (the page included). Each call gets a thread that iterates the engine's stream
and hands items to the loop through an asyncio queue (no thread-pool slot is held while a
request waits its turn for the model). A watcher sets ``cancel`` when the client disconnects;
the backend checks it at every token.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from engine.types import Chunk

from .errors import APIError, from_exception

#: most request bytes accepted (413 above); a long chat fits many times over
MAX_BODY_BYTES = 8 * 1024 * 1024

#: most API generations running or queued for the model at once (each holds a thread)
MAX_WAITING = 64

#: a stream's headers (and first event) go out at most this long after the request, even while
#: the prompt is still evaluated: errors found before evaluation come well within it
HEADERS_WITHIN_S = 2.0

_END = object()


class Gate:
    """Admits at most ``limit`` generations at a time; one more is a 503, not another thread."""

    def __init__(self, limit: int = MAX_WAITING):
        self._limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self._count >= self._limit:
                raise APIError(
                    503,
                    f"The server is busy: {self._count} calls are waiting for the model. Retry shortly.",
                    type="server_error",
                    code="server_busy",
                    headers={"Retry-After": "2"},
                )
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1


class _Runners:
    """Daemon threads that iterate API generations, kept between requests: starting a thread
    cost 2.5-4 ms of every call's TTFT here. A job finds an idle thread or starts one (at most
    ``MAX_WAITING`` run at once: the Gate admits no more)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, name="hearth-api-generation", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_RUNNERS = _Runners()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Generation:
    """One engine stream running on its own thread, cancelled when the client goes away.

    ``produce(cancel)`` returns the blocking iterator of Chunks; the last one carries
    finish_reason. Always ``close()`` it (the routes do, in ``finally``).
    """

    def __init__(self, request: Request, produce: Callable[[threading.Event], Iterator[Chunk]], gate: Gate):
        gate.enter()
        self._gate = gate
        self.cancel = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._held: list[Chunk] = []
        self._watcher = asyncio.create_task(_watch_disconnect(request, self.cancel))
        _RUNNERS.run(functools.partial(self._pump, produce))

    def _pump(self, produce: Callable[[threading.Event], Iterator[Chunk]]) -> None:
        try:
            for item in produce(self.cancel):
                self._put(item)
        except BaseException as e:  # handed to the request, which answers in OpenAI's shape
            self._put(_Failed(e))
        finally:
            self._gate.leave()
            self._put(_END)

    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server is shutting down
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def _next(self) -> Chunk | None:
        if self._held:
            return self._held.pop()
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, _Failed):
            raise item.error
        return item

    async def start(self, patience: float | None = None) -> None:
        """Wait for the first chunk, so that an error before any output (a bad grammar, no
        model, a full context) is answered with its own status code rather than inside a 200
        stream; those come at once. A stream waits at most ``patience`` seconds: a long prompt,
        or a turn queued behind another, then gets its headers while it is evaluated, and a
        client's first-byte timeout does not run out (a later error travels as an event)."""
        try:
            first = await asyncio.wait_for(self._next(), patience)
        except TimeoutError:
            return
        if first is not None:
            self._held.append(first)

    async def chunks(self) -> AsyncIterator[Chunk]:
        """The chunks up to and including the one with finish_reason."""
        while (chunk := await self._next()) is not None:
            yield chunk
            if chunk.finish_reason:
                return

    async def collect(self) -> list[Chunk]:
        return [chunk async for chunk in self.chunks()]

    def close(self) -> None:
        """Stop generating (a no-op once the answer is complete) and stop watching."""
        self.cancel.set()
        self._watcher.cancel()


async def _watch_disconnect(request: Request, cancel: threading.Event) -> None:
    # the body is read already: the next message the server sends is the disconnect
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


async def answer(
    request: Request,
    produce: Callable[[threading.Event], Iterator[Chunk]],
    *,
    gate: Gate,
    stream: bool,
    events: Callable[[Generation], AsyncIterator[dict[str, Any]]],
    whole: Callable[[list[Chunk]], dict[str, Any]],
) -> Response:
    """Run ``produce`` on its thread and reply: server-sent ``events`` or one JSON ``whole``."""
    generation = Generation(request, produce, gate)
    try:
        await generation.start(HEADERS_WITHIN_S if stream else None)
    except BaseException:
        generation.close()
        raise
    if stream:
        return sse_response(events(generation), generation)
    try:
        chunks = await generation.collect()
    finally:
        generation.close()
    return JSONResponse(whole(chunks))


def sse_response(events: AsyncIterator[dict[str, Any]], generation: Generation) -> StreamingResponse:
    """Server-sent events, one JSON object each, ending in ``data: [DONE]``.

    An error after the stream started is sent as an ``{"error": ...}`` event (the openai client
    raises it), without [DONE]. The generation is closed whatever happens.
    """

    async def body() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield f"data: {dumps(event)}\n\n"
            yield "data: [DONE]\n\n"
        except Exception as e:  # after the 200 went out, errors travel as an event
            yield f"data: {dumps(from_exception(e).body())}\n\n"
        finally:
            generation.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
