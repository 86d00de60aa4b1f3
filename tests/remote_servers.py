"""Real servers for the remote-engine tests, each on a free loopback port with its own temp dir.

llama-cpp-python's OpenAI-compatible server on the bundled GGUF, a real Chroma server, and
small misbehaving HTTP servers (garbage, a stream cut short, silence) for the failure tests.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from serving import free_port

from engine.backends.llama_cpp import bundled_model_path


class ServerProcess:
    def __init__(self, args: list[str], log: Path, ready_path: str, port: int, headers: dict | None = None):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT)
        self._wait_ready(ready_path, headers or {})

    def _wait_ready(self, path: str, headers: dict, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + path, headers=headers, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        """As a crash would: no goodbye to open connections."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


ROOT = Path(__file__).resolve().parent.parent
LLAMA_SERVER = """
import runpy, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import llama_cpp
from engine.backends import amx_check
from engine.backends.gguf_files import bundled_model_path
amx_check.guard(llama_cpp, bundled_model_path(), Path({data!r}))
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def start_llama_server(tmp: Path, *, api_key: str | None = None, n_ctx: int = 2048) -> ServerProcess:
    port = free_port()
    args = [
        sys.executable,
        "-c",
        # llama-cpp-python's server, after the AMX check Hearth's own backend makes (amx_check)
        LLAMA_SERVER.format(root=str(ROOT), data=str(tmp)),
        "--model",
        str(bundled_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--flash_attn",  # as Hearth's own engine runs (greedy answers then match token for token)
        "true",
    ]
    headers = {}
    if api_key:
        args += ["--api_key", api_key]
        headers = {"Authorization": f"Bearer {api_key}"}
    return ServerProcess(args, tmp / "llama-server.log", "/v1/models", port, headers)


def start_chroma_server(tmp: Path) -> ServerProcess:
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    path = tmp / "chroma-server-data"
    args = [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(args, tmp / "chroma-server.log", "/api/v2/heartbeat", port)


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def tiny_server(routes: dict[tuple[str, str], Handler]) -> Iterator[tuple[str, list]]:
    """A threaded http.server answering (method, path) with a handler; yields (url, seen requests)."""
    seen: list[tuple[str, str, dict, bytes]] = []

    class Handle(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append((method, self.path, dict(self.headers), body))
            route = routes.get((method, self.path.split("?")[0]))
            if route is None:
                send_json(self, {"error": "not found"}, status=404)
            else:
                route(self)

        def do_GET(self):  # noqa: N802 - http.server's naming
            self._any("GET")

        def do_POST(self):  # noqa: N802
            self._any("POST")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def send_json(h: http.server.BaseHTTPRequestHandler, body, status: int = 200) -> None:
    data = json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def send_stream(h: http.server.BaseHTTPRequestHandler, lines: list[str], *, complete: bool = True) -> None:
    """An event stream in chunked encoding; ``complete=False`` drops the connection without ending it."""
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for line in lines:
        data = (line + "\n\n").encode()
        h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        h.wfile.flush()
    if complete:
        h.wfile.write(b"0\r\n\r\n")
    h.close_connection = True


def models_route(owned_by: str = "tiny", model: str = "tiny-model") -> Handler:
    return lambda h: send_json(
        h, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": owned_by}]}
    )


def delta(text: str, finish: str | None = None) -> str:
    choice = {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
    return "data: " + json.dumps({"object": "chat.completion.chunk", "choices": [choice]})


def reasoning(text: str) -> str:
    """A delta as vLLM's and llama.cpp's reasoning parsers stream a thinking model's thoughts."""
    choice = {"index": 0, "delta": {"reasoning_content": text}, "finish_reason": None}
    return "data: " + json.dumps({"object": "chat.completion.chunk", "choices": [choice]})
