"""The server's guard, over raw HTTP against a real ``run.py serve`` process: Host and Origin
checks (DNS rebinding, cross-site requests), upload limits, security headers, routes that would
fetch URLs, the temp folder, login backoff and the credential flags."""

from __future__ import annotations

import logging
import re
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from serving import ROOT, CountingServer, call, endpoint, served

from engine import Settings, build

SECRET = "the vault code is 7731 heron"


def _prepare(data_dir: Path) -> None:
    """A private conversation stored before the server starts (the server owns the data dir)."""
    services = build(Settings(data_dir=data_dir, n_ctx=2048), load_model=False)
    try:
        conv = services.conversations.create(title="private")
        services.conversations.add_message(conv.id, "user", f"Remember: {SECRET}.")
        services.conversations.add_message(conv.id, "assistant", "I will keep it safe.")
    finally:
        services.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("guarded") / "data"
    _prepare(data_dir)
    # Gradio's own switches in the environment must not open a tunnel or turn features on
    gradio_env = {"GRADIO_SHARE": "True", "GRADIO_RUN_HISTORY": "True", "GRADIO_MCP_SERVER": "True"}
    with served(data_dir, "--max-upload-mb", "1", env=gradio_env) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def attacker():
    counting = CountingServer()
    yield counting
    counting.close()


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_memory_search_answers_its_own_page(base):
    url, _ = base
    status, body = call(url, endpoint(url, "mem-search"), ["vault", "", ""])
    assert status == 200 and "7731 heron" in body  # the endpoint works: the refusals below mean something


def test_dns_rebinding_gets_no_data(base):
    url, _ = base
    api = endpoint(url, "mem-search")
    rebound = {"Host": f"attacker.example:{_port(url)}", "Origin": f"http://attacker.example:{_port(url)}"}
    posted = httpx.post(f"{url}/gradio_api/call/{api}", json={"data": ["vault", "", ""]}, headers=rebound)
    assert posted.status_code == 400 and "7731" not in posted.text
    assert "access-control-allow-origin" not in posted.headers
    for path in ("/", "/config", "/gradio_api/info", f"/gradio_api/call/{api}/x"):
        got = httpx.get(url + path, headers={"Host": "attacker.example"})
        assert got.status_code == 400 and "7731" not in got.text and "vault" not in got.text
    assert httpx.get(url + "/config", headers={"Host": f"localhost:{_port(url)}"}).status_code == 200


def test_foreign_origin_is_refused_even_with_the_right_host(base):
    url, _ = base
    api = endpoint(url, "mem-search")
    for origin in ("http://attacker.example", "null", f"http://127.0.0.1:{int(_port(url)) + 1}"):
        status, body = call(url, api, ["vault", "", ""], headers={"Origin": origin})
        assert status == 403 and "7731" not in body
    preflight = httpx.options(
        f"{url}/gradio_api/call/{api}",
        headers={"Origin": "http://attacker.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    no_origin = httpx.post(
        f"{url}/gradio_api/call/{api}",
        json={"data": ["vault", "", ""]},
        headers={"Referer": "http://evil.example/x"},
    )
    assert no_origin.status_code == 403
    status, body = call(url, api, ["vault", "", ""], headers={"Origin": url})  # the page itself
    assert status == 200 and "7731 heron" in body


def test_uploads_need_our_origin_stay_in_the_data_dir_and_have_a_size_limit(base):
    url, data_dir = base
    files = {"files": ("notes.txt", b"hello upload", "text/plain")}
    refused = httpx.post(
        f"{url}/gradio_api/upload", files=files, headers={"Origin": "http://attacker.example"}
    )
    assert refused.status_code == 403
    assert not list((data_dir / "tmp").rglob("notes.txt"))

    ok = httpx.post(f"{url}/gradio_api/upload", files=files, headers={"Origin": url})
    assert ok.status_code == 200
    [path] = ok.json()
    assert Path(path).is_relative_to(data_dir / "tmp") and Path(path).read_bytes() == b"hello upload"
    assert stat.S_IMODE((data_dir / "tmp").stat().st_mode) == 0o700
    assert not list((Path(tempfile.gettempdir()) / "gradio").glob(f"*/{Path(path).parent.name}*"))

    big = {"files": ("big.bin", b"x" * (2 * 2**20), "application/octet-stream")}
    assert httpx.post(f"{url}/gradio_api/upload", files=big, headers={"Origin": url}).status_code == 413

    def chunks():  # no Content-Length: the limit is counted on the stream
        yield b"--b\r\nContent-Disposition: form-data; name=files; filename=big.bin\r\n\r\n"
        for _ in range(40):
            yield b"x" * 65536

    chunked = httpx.post(
        f"{url}/gradio_api/upload",
        content=chunks(),
        headers={"Origin": url, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert chunked.status_code == 413


def test_every_response_has_the_security_headers(base):
    url, _ = base
    for path in ("/", "/config", "/gradio_api/info", "/no-such-page", "/theme.css"):
        got = httpx.get(url + path)
        csp = got.headers["content-security-policy"]
        assert "img-src 'self' data: blob:" in csp and "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["referrer-policy"] == "no-referrer"
    page = httpx.get(url + "/")
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert "'unsafe-inline'" not in page.headers["content-security-policy"].split("style-src")[0]


def test_routes_that_fetch_urls_or_read_other_files_are_refused(base, attacker):
    url, _ = base
    target = f"{attacker.url}/leak.png"
    paths = [
        f"/gradio_api/file={target}",
        f"/gradio_api/file/{target}",
        f"/gradio_api/file/{attacker.url}/a=b.png",
    ]
    for path in [*paths, f"/gradio_api/proxy={target}"]:
        assert httpx.get(url + path).status_code in (403, 404)
    api = endpoint(url, "send")
    image = {"path": target, "meta": {"_type": "gradio.FileData"}, "orig_name": "leak.png"}
    status, _ = call(url, api, [None, "hi", [], False, "", image, "", [], *([None] * 20)], {"Origin": url})
    assert status == 403
    local = {**image, "path": "/etc/hostname"}
    status, _ = call(url, api, [None, "hi", [], False, "", local, "", [], *([None] * 20)], {"Origin": url})
    assert status == 403
    assert attacker.requests == []
    httpx.get(target)  # the stand-in is reachable: a fetch by the server would have been counted
    assert attacker.requests == ["/leak.png"]
    attacker.requests.clear()


def test_gradio_environment_opens_no_tunnel_and_no_extra_routes(base):
    url, data_dir = base
    for path in ("/gradio_api/runs", "/gradio_api/mcp/sse", "/monitoring"):
        assert httpx.get(url + path).status_code == 404
    config = httpx.get(url + "/config").json()
    assert config.get("footer_links") == [] and not config.get("mcp_server")
    logs = " ".join(p.read_text(errors="replace") for p in data_dir.parent.glob("server-*.log")).lower()
    assert "gradio.live" not in logs and "share" not in logs and "public url" not in logs


def test_failed_logins_slow_down_and_the_right_password_still_works(tmp_path):
    data_dir = tmp_path / "data"
    with served(data_dir, env={"HEARTH_AUTH": "orla:correct-horse"}) as url:
        assert httpx.get(url + "/config").status_code == 401  # auth is on
        form = {"username": "orla", "password": "wrong-password"}
        for _ in range(3):  # the first three failures are answered at once
            assert httpx.post(url + "/login", data=form, headers={"Origin": url}).status_code == 400
        started = time.monotonic()
        assert httpx.post(url + "/login", data=form, headers={"Origin": url}, timeout=60).status_code == 400
        assert time.monotonic() - started >= 1.0  # the fourth waits first (a lower bound, never flaky)
        good = httpx.post(
            url + "/login", data={**form, "password": "correct-horse"}, headers={"Origin": url}, timeout=60
        )
        assert good.status_code == 200
        assert httpx.get(url + "/config", cookies=good.cookies).status_code == 200


def _serve_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", "serve", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), **(env or {})},
    )


def test_short_passwords_and_open_network_listening_are_refused(tmp_path):
    short = _serve_cli("--auth", "me:short")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    assert "visible" in short.stderr or "ps" in short.stderr  # --auth warns that ps shows it
    from_env = _serve_cli(env={"HEARTH_AUTH": "me:tiny"})
    assert from_env.returncode != 0 and "at least 8 characters" in from_env.stderr
    auth_file = tmp_path / "users"
    auth_file.write_text("# who may log in\nme:1234\n")
    assert "at least 8 characters" in _serve_cli("--auth-file", str(auth_file)).stderr
    exposed = _serve_cli("--host", "0.0.0.0")
    assert exposed.returncode != 0 and "without credentials" in exposed.stderr
    half_tls = _serve_cli("--ssl-certfile", "cert.pem")
    assert half_tls.returncode != 0 and "go together" in half_tls.stderr


def test_extra_routers_sit_behind_the_same_guard(tmp_path):
    """The /v1 API (or any router passed in) gets the Host, Origin and header rules too;
    API clients send no Origin and pass."""
    from fastapi import APIRouter
    from serving import free_port

    from app.server import create_app, serve

    router = APIRouter(prefix="/v1")

    @router.get("/models")
    def models() -> dict:
        return {"data": [{"id": "secret-model"}]}

    @router.post("/chat/completions")
    def complete(body: dict) -> dict:
        return {"echo": body}

    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048), load_model=False)
    port = free_port()
    server = serve(
        create_app(services, port=port, routers=[router]), host="127.0.0.1", port=port, block=False
    )
    try:
        url = f"http://127.0.0.1:{port}"
        ok = httpx.get(url + "/v1/models")
        assert ok.status_code == 200 and "secret-model" in ok.text
        assert "frame-ancestors 'none'" in ok.headers["content-security-policy"]
        rebound = httpx.get(url + "/v1/models", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400 and "secret-model" not in rebound.text
        assert httpx.post(url + "/v1/chat/completions", json={"a": 1}).status_code == 200
        foreign = httpx.post(
            url + "/v1/chat/completions", json={"a": 1}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        # refusals in OpenAI's shape, so that clients show the reason and what to do about it
        docker = httpx.get(url + "/v1/models", headers={"Host": f"host.docker.internal:{port}"})
        error = docker.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "--allowed-host host.docker.internal" in error["message"]
        assert foreign.json()["error"]["type"] == "permission_error"
        assert "--allowed-host evil.example" in foreign.json()["error"]["message"]
        import openai

        client = openai.OpenAI(
            base_url=url + "/v1",
            api_key="x",
            max_retries=0,
            default_headers={"Origin": "https://evil.example"},
        )
        with pytest.raises(openai.PermissionDeniedError, match="Cross-origin request refused"):
            client.models.list()
        with socket.create_connection(("127.0.0.1", port)) as raw:  # a declared 1 TB body: refused unread
            raw.sendall(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {2**40}\r\n\r\n{{}}".encode()
            )
            assert raw.recv(200).startswith(b"HTTP/1.1 413")
    finally:
        server.close()
        services.close()


def test_the_page_queue_does_not_poll_every_millisecond(tmp_path):
    """Gradio's queue looks for work every millisecond, idle or streaming; the page's queue
    looks every ``QUEUE_POLL_S`` (the attributes are Gradio's: a Gradio without them fails here)."""
    import gradio as gr

    from app.server import PROGRESS_POLL_S, QUEUE_POLL_S, create_app

    with gr.Blocks() as plain:
        gr.Markdown("stock")
    stock = plain.queue()._queue
    assert stock.sleep_when_free < QUEUE_POLL_S and stock.progress_update_sleep_when_free < PROGRESS_POLL_S
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048), load_model=False)
    try:
        queue = create_app(services).state.blocks._queue
        assert (queue.sleep_when_free, queue.progress_update_sleep_when_free) == (
            QUEUE_POLL_S,
            PROGRESS_POLL_S,
        )
    finally:
        services.close()


def test_tls_and_extra_host_names(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hearth.lan",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    flags = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--allowed-host", "hearth.lan")
    with served(tmp_path / "data", *flags, scheme="https") as url:
        port = _port(url)
        with httpx.Client(verify=False) as client:
            assert client.get(url + "/config").status_code == 200
            assert client.get(url + "/config", headers={"Host": f"hearth.lan:{port}"}).status_code == 200
            assert (
                client.get(url + "/config", headers={"Host": "hearth.lan"}).status_code == 200
            )  # behind a proxy
            assert client.get(url + "/config", headers={"Host": f"other.lan:{port}"}).status_code == 400
            origin = {"Origin": f"https://hearth.lan:{port}"}
            assert (
                client.post(
                    url + "/gradio_api/upload", files={"files": ("a.txt", b"a")}, headers=origin
                ).status_code
                == 200
            )
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/config")  # no plain http on that port


def test_listening_beyond_loopback_warns_without_tls(caplog):
    from cli.serve_cmd import check_exposure, log

    # the warning goes through logging (stderr and the log file): read the records themselves
    with caplog.at_level(logging.WARNING, logger=log.name):
        check_exposure("192.168.1.20", [("orla", "correct-horse")], tls=False)
        assert "without TLS" in caplog.text
        caplog.clear()
        check_exposure("192.168.1.20", [("orla", "correct-horse")], tls=True)
        assert "TLS" not in caplog.text
        check_exposure("127.0.0.1", None)
        assert caplog.text == ""
