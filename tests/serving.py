"""Helpers for tests that run a real ``python run.py serve`` process and poke it over HTTP."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def served(
    data_dir: Path, *flags: str, env: dict[str, str] | None = None, scheme: str = "http"
) -> Iterator[str]:
    """A real server process on a free loopback port; yields its base URL, stops it after."""
    port = free_port()
    child_env = {**os.environ, **(env or {})}  # the child's environment only
    log = open(data_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--data-dir", str(data_dir), "serve", "--port", str(port), *flags],
        cwd=ROOT,
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base, data_dir.parent / f"server-{port}.log")
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_until_up(proc: subprocess.Popen, base: str, log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            httpx.get(base + "/gradio_api/info", timeout=2, verify=False)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start in 120 s")


class CountingServer:
    """A tiny HTTP server on another loopback address that counts the requests it gets:
    the stand-in for an attacker's host that a page must never contact."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def endpoint(base: str, elem_id: str) -> str:
    """The api_name of the event a component (by elem_id) triggers, read from /config."""
    config = httpx.get(base + "/config", timeout=30).json()
    [component] = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    for dep in config["dependencies"]:
        if any(target[0] == component for target in dep["targets"]):
            return dep["api_name"]
    raise LookupError(elem_id)


def call(base: str, api_name: str, data: list, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Call a Gradio endpoint the way any HTTP client can: POST, then read the event stream.
    Returns (status of the POST, everything the server sent back)."""
    posted = httpx.post(
        f"{base}/gradio_api/call/{api_name}", json={"data": data}, headers=headers, timeout=60
    )
    if posted.status_code != 200:
        return posted.status_code, posted.text
    event_id = posted.json()["event_id"]
    result = httpx.get(f"{base}/gradio_api/call/{api_name}/{event_id}", headers=headers, timeout=120)
    return result.status_code, posted.text + result.text


def json_events(stream: str) -> list:
    return [
        json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:") and line[5:].strip()
    ]
