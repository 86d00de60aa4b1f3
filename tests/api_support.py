"""A real uvicorn server on a random loopback port serving only the API router (no Gradio),
over real services built on the bundled model; used by tests/test_api*.py and bench/bench_api.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backend_doubles import DelegatingBackend
from serving import free_port

API_KEY = "test-key-0123456789"


@contextmanager
def serve_api(services, *, api_key: str | None = API_KEY) -> Iterator[str]:
    """Serve ``build_router(services)`` under uvicorn in a thread; yield the base URL."""
    import uvicorn
    from fastapi import FastAPI

    from api import build_router

    app = FastAPI()
    app.include_router(build_router(services, api_key=api_key))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="test-api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def api_client(services) -> Iterator[tuple[Any, str]]:
    """The API served over ``services`` (serve_api) and an openai client of it: (client, model id)."""
    import openai

    with serve_api(services) as url, openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY) as client:
        yield client, client.models.list().data[0].id


class RecordingBackend(DelegatingBackend):
    """The real backend, with a note of how each generation ended (to see cancellations)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.finishes: list[str] = []

    def _record(self, chunks):
        for chunk in chunks:
            if chunk.finish_reason:
                self.finishes.append(chunk.finish_reason)
            yield chunk

    def stream_chat(self, messages, config, **kwargs):
        return self._record(self.inner.stream_chat(messages, config, **kwargs))

    def stream_completion(self, prompt, config, **kwargs):
        return self._record(self.inner.stream_completion(prompt, config, **kwargs))
