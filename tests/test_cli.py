"""The command line, run as a user runs it (subprocesses over the real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hearth(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEARTH_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_chat_json_continue_list_and_export(tmp_path):
    first = json.loads(
        hearth(
            "chat", "Say hello.", "--json", "--temperature", "0", "--max-tokens", "8", data_dir=tmp_path
        ).stdout
    )
    assert first["usage"]["completion_tokens"] <= 8 and first["message"]
    assert first["timings"]["ttft_s"] > 0
    cid = first["conversation_id"]
    second = json.loads(
        hearth(
            "chat",
            "Again.",
            "--conversation",
            cid,
            "--json",
            "--temperature",
            "0",
            "--max-tokens",
            "4",
            data_dir=tmp_path,
        ).stdout
    )
    assert second["conversation_id"] == cid
    assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]

    listed = json.loads(hearth("conversations", "--json", data_dir=tmp_path).stdout)
    assert [c["id"] for c in listed] == [cid]
    md = hearth("export", cid, "--format", "md", data_dir=tmp_path).stdout
    assert "Say hello." in md and first["message"].strip()[:10] in md
    exported = json.loads(hearth("export", cid, "--format", "json", data_dir=tmp_path).stdout)
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant", "user", "assistant"]
    assert exported["messages"][1]["config"]["max_tokens"] == 8


def test_plain_chat_streams_text_and_status(tmp_path):
    result = hearth("chat", "Name a fruit.", "--preset", "Precise", "--max-tokens", "6", data_dir=tmp_path)
    assert result.stdout.strip()
    assert "tok/s" in result.stderr


def test_invalid_flag_value_is_a_clear_error(tmp_path):
    result = hearth("chat", "Hi", "--temperature", "9", data_dir=tmp_path, check=False)
    assert result.returncode == 2
    assert "Temperature (temperature) must be between 0.0 and 2.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_is_a_clear_error(tmp_path):
    result = hearth("--model", str(tmp_path / "none.gguf"), "chat", "Hi", data_dir=tmp_path, check=False)
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_to_listen_beyond_loopback_without_credentials(tmp_path):
    result = hearth("serve", "--host", "0.0.0.0", data_dir=tmp_path, check=False)
    assert result.returncode != 0 and "Refusing to listen on 0.0.0.0" in result.stderr


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, cli; cli.global_parser().format_help(); "
        "print(sorted(m for m in ('llama_cpp', 'gradio', 'torch', 'chromadb', 'open_clip', "
        "'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_memory_switches_reach_the_settings(monkeypatch):
    import cli

    monkeypatch.setenv("HEARTH_MEMORY", "0")
    args = cli.global_parser().parse_args(["--memory-agent", "conversations"])
    settings = cli.settings_from(args)
    assert settings.memory is False and settings.memory_agent is True
    monkeypatch.delenv("HEARTH_MEMORY")
    assert cli.settings_from(cli.global_parser().parse_args(["conversations"])).memory is True


def test_no_command_means_serve(tmp_path):
    result = hearth("--host", "0.0.0.0", data_dir=tmp_path, check=False)
    assert result.returncode != 0 and "Refusing to listen on 0.0.0.0" in result.stderr


def test_python_run_py_serves_the_page(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HEARTH_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "run.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and server.poll() is None and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    status, config = response.status, json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert status == 200, server.stderr.read() if server.poll() is not None else "no answer"
        assert config["title"] == "Hearth"
        assert any(c.get("props", {}).get("elem_id") == "hearth-chat" for c in config["components"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run_with_env(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "HEARTH_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
    )


def test_a_malformed_environment_variable_is_a_usage_error_and_help_still_works(tmp_path):
    assert _run_with_env(tmp_path, "--help", HEARTH_N_CTX="abc").returncode == 0
    bad_int = _run_with_env(tmp_path, "conversations", HEARTH_N_CTX="abc")
    assert bad_int.returncode == 2 and "--n-ctx: invalid int value: 'abc'" in bad_int.stderr
    assert "Traceback" not in bad_int.stderr
    bad_port = _run_with_env(tmp_path, "serve", HEARTH_PORT="x")
    assert bad_port.returncode == 2 and "--port: invalid int value" in bad_port.stderr
    bad_flag = _run_with_env(tmp_path, "conversations", HEARTH_MEMORY="maybe")
    assert (
        bad_flag.returncode == 2 and "HEARTH_MEMORY" in bad_flag.stderr and "Traceback" not in bad_flag.stderr
    )


def test_every_boolean_variable_reads_the_same_words(monkeypatch):
    from cli import global_parser

    for word, on in (
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("0", False),
        ("off", False),
        ("False", False),
    ):
        monkeypatch.setenv("HEARTH_MEMORY_AGENT", word)
        monkeypatch.setenv("HEARTH_KV_SNAPSHOTS", word)
        args = global_parser().parse_args(["conversations"])
        assert args.memory_agent is on and args.no_kv_snapshots is (not on)


def test_a_command_flag_is_never_read_as_a_global_prefix():
    """search --k once collided with the global --kv-cache-* flags through argparse's abbreviations."""
    from cli import global_parser

    args = global_parser().parse_args(["search", "pump", "--k", "3"])
    assert args.command == "search" and args.k == 3


#: every variable the README documented before one mechanism derived them; each must keep working
DOCUMENTED_VARIABLES = """ALLOWED_HOSTS API_KEY AUTH AUTH_FILE AUTO_MEMORY BACKEND_KEY BACKEND_KEY_FILE BACKEND_MODEL
BACKEND_N_CTX BACKEND_TIMEOUT BACKEND_URL CHAT_TEMPLATE CHROMA_TOKEN CHROMA_TOKEN_FILE CHROMA_URL CLIP_BATCH_SIZE
CLIP_DEVICE CLIP_MODEL CLIP_PRETRAINED DATA_DIR EMBED_MODEL EMBED_PASSAGE_PREFIX EMBED_QUERY_PREFIX HOST
KV_CACHE_DISK_MB KV_CACHE_RAM_MB KV_SNAPSHOTS MAX_UPLOAD_MB MEMORY MEMORY_AGENT MMPROJ MODEL N_CTX N_GPU_LAYERS
N_THREADS N_THREADS_BATCH PORT PROMPT_LOOKUP RERANK_MODEL SSL_CERTFILE SSL_KEYFILE""".split()


def _without_hearth_variables(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("HEARTH_")]:
        monkeypatch.delenv(name)


def test_the_readme_lists_exactly_the_variables_the_flags_read(monkeypatch):
    from cli import global_parser
    from cli.options import env_options, markdown_table

    _without_hearth_variables(monkeypatch)
    table = markdown_table(global_parser())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, "README's table is stale; paste this one:\n" + table
    variables = {o.variable for o in env_options(global_parser())}
    assert {f"HEARTH_{name}" for name in DOCUMENTED_VARIABLES} <= variables


def test_every_variable_reaches_its_flag(monkeypatch):
    """Each listed variable changes what its flag parses to (so the table never lists a dead one)."""
    from cli import global_parser
    from cli.options import env_options

    _without_hearth_variables(monkeypatch)
    samples = {"HEARTH_LOG_LEVEL": "info", "HEARTH_ALLOWED_HOSTS": "a.lan, b.lan"}
    for option in env_options(global_parser()):
        argv = ["serve"] if option.command == "serve" else ["conversations"]
        before = getattr(global_parser().parse_args(argv), option.dest)
        value = samples.get(option.variable, "0" if option.flag.startswith("--no-") else "1")
        monkeypatch.setenv(option.variable, value)
        after = getattr(global_parser().parse_args(argv), option.dest)
        monkeypatch.delenv(option.variable)
        assert after != before, option


def test_flags_default_to_the_settings_defaults(monkeypatch, tmp_path):
    import cli
    from engine.config import Settings

    _without_hearth_variables(monkeypatch)
    args = cli.global_parser().parse_args(["--data-dir", str(tmp_path), "conversations"])
    assert cli.settings_from(args) == Settings(data_dir=tmp_path)
    monkeypatch.setenv("HEARTH_ALLOWED_HOSTS", "a.lan, b.lan")
    serve = cli.global_parser().parse_args(["serve", "--allowed-host", "c.lan"])
    assert serve.allowed_host == ["a.lan", "b.lan", "c.lan"]


def test_log_level_is_taken_before_or_after_any_command(monkeypatch):
    from cli import global_parser

    _without_hearth_variables(monkeypatch)
    assert global_parser().parse_args(["memory", "show"]).log_level == "warning"
    assert global_parser().parse_args(["memory", "show", "--log-level", "DEBUG"]).log_level == "debug"
    monkeypatch.setenv("HEARTH_LOG_LEVEL", "error")
    assert global_parser().parse_args(["chat", "hi"]).log_level == "error"
    assert global_parser().parse_args(["chat", "hi", "--log-level", "info"]).log_level == "info"
