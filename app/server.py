"""The web server: our own FastAPI app, the Gradio page mounted in it, the guard in front.

``create_app`` composes it; ``serve`` runs it with uvicorn. Gradio is configured here so that
it keeps to the machine: no share tunnel (``launch`` is never called, so GRADIO_SHARE has
nothing to open), no analytics or version pings, no run history, no SSR node server, no MCP,
no monitoring, and its temp files (uploads, copies of shown files) in ``data_dir/tmp``
(mode 0700) instead of the system temp folder.

Gradio reads its temp folder from GRADIO_TEMP_DIR once, when each component is created
(``Block.GRADIO_CACHE``) and when its app is created (``App.uploaded_file_dir``). Hearth
never changes process environment, so it sets those two attributes after building the page.
Gradio then checks uploaded file paths against the environment's folder only after a
``launch()``, which a mounted app never does: the guard (app/security.py) checks instead
that every file object a request hands to a function lies inside ``data_dir/tmp``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import security
from .page_script import FIRST_SCRIPT
from .security import Guard, GuardConfig, LoginThrottle

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import APIRouter, FastAPI

    from engine.factory import Services

DEFAULT_MAX_UPLOAD_MB = 1024
#: Gradio deletes the temp files it made every hour once they are a day old, and all at exit
DELETE_CACHE = (3600, 86400)

#: how often Gradio's queue looks for a new event to start, and for progress to send (Gradio: 1 ms
#: and 10 ms; 50 ms and 100 ms on Windows)
QUEUE_POLL_S = 0.01
PROGRESS_POLL_S = 0.1
Credentials = Sequence[tuple[str, str]]


def temp_dir(data_dir: Path) -> Path:
    """``data_dir/tmp``, mode 0700, emptied of what an earlier run (or a crash) left there."""
    tmp = Path(data_dir) / "tmp"
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700, exist_ok=True)
    tmp.chmod(0o700)  # mkdir's mode is masked by the umask
    return tmp


def create_app(
    services: Services,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | Credentials | None = None,
    allowed_hosts: Iterable[str] = (),
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """The FastAPI app serving the page (and ``routers``, e.g. the /v1 API), guarded."""
    from fastapi import FastAPI

    from engine.settings import is_loopback

    from .ui import build_ui

    tmp = temp_dir(services.settings.data_dir)
    demo = build_ui(services, browser_here=is_loopback(host))
    demo.queue(default_concurrency_limit=4)
    _calm_queue(demo)
    _keep_temp_files_in(demo, tmp)
    demo.delete_cache = DELETE_CACHE
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    for router in routers:
        app.include_router(router)
    credentials = [auth] if isinstance(auth, tuple) else (list(auth) if auth else None)
    _mount_page(
        app, demo, services, host=host, port=port, auth=credentials, max_upload_bytes=max_upload_bytes
    )
    _gradio_app(app).uploaded_file_dir = str(tmp)
    config = GuardConfig(
        hosts=security.allowed_hosts(host, port, allowed_hosts),
        max_body_bytes=max_upload_bytes,
        upload_root=tmp,
        script_sources=security.script_hashes(demo.head or ""),
        first_script=FIRST_SCRIPT,
    )
    app.add_middleware(Guard, config=config, throttle=LoginThrottle())
    app.state.blocks = demo
    services.documents.watcher.start()  # watched folders follow while the page is served
    return app


def _mount_page(
    app: FastAPI,
    demo: gr.Blocks,
    services: Services,
    *,
    host: str,
    port: int,
    auth: Credentials | None,
    max_upload_bytes: int,
) -> None:
    """Gradio's page at /, with everything that reaches outside the app turned off."""
    import gradio as gr

    from .ui import CSS_PATH

    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=host,
        server_port=port,
        auth=auth,
        allowed_paths=[str(services.settings.files_dir)],
        css_paths=[CSS_PATH],
        theme="soft",
        footer_links=[],
        show_error=False,
        max_file_size=max_upload_bytes,
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        js=demo._deprecated_js,
        head=demo._deprecated_head,  # what build_ui gave gr.Blocks(js=, head=)
    )


def _calm_queue(demo: gr.Blocks) -> None:
    """Gradio's queue wakes its event loop a thousand times a second to look for new events,
    idle or not: 4.4 % of a core with nothing to do (1.3 % at these intervals), and while an
    answer streams to the page each wake-up takes the GIL from the llama thread's sampling and
    the CPU from the browser beside it. An event now starts up to 10 ms later."""
    queue = demo._queue
    for name, seconds in (
        ("sleep_when_free", QUEUE_POLL_S),
        ("progress_update_sleep_when_free", PROGRESS_POLL_S),
    ):
        if hasattr(queue, name):  # Gradio's own names (gradio/queueing.py); another Gradio keeps its own
            setattr(queue, name, seconds)


def _keep_temp_files_in(demo: Any, tmp: Path) -> None:
    for block in [demo, *demo.blocks.values()]:
        block.GRADIO_CACHE = str(tmp)


def _gradio_app(app: Any) -> Any:
    from starlette.routing import Mount

    return next(r.app for r in app.routes if isinstance(r, Mount) and hasattr(r.app, "uploaded_file_dir"))


class Server:
    """A running uvicorn server in a thread (tests and ``launch(block=False)``)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    block: bool = True,
) -> Server | None:
    """Run ``app`` with uvicorn; with ``block=False`` in a thread, returned once it listens."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if block:
        server.run()
        return None
    thread = threading.Thread(target=server.run, name="hearth-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.05)
    return Server(server, thread)
