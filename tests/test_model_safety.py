"""The Model tab cannot reach arbitrary files, crash the server, or exhaust the machine (issue 8)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import GREEDY, run_turn

from app import model_handlers as mh
from engine import GenerationError
from engine.backends.limits import fit_context, kv_bytes_per_token
from engine.backends.llama_cpp import bundled_model_path

ROOT = Path(__file__).resolve().parent.parent


def _load(services, path="", uploaded=None, n_ctx=1024, template="", mmproj=""):
    return mh.load_model(
        services, path, uploaded, n_ctx, "", "", 256, False, "f16", "f16", True, False, template, mmproj
    )


def test_the_page_loads_no_server_path_outside_the_models_folder(services, tmp_path):
    outside = tmp_path / "outside.gguf"
    shutil.copyfile(bundled_model_path(), outside)
    traversal = str(services.settings.models_dir / ".." / ".." / "outside.gguf")
    answers = {
        _load(services, p)[1]
        for p in ("/etc/shadow", "/etc/passwd", "/nonexistent/x.gguf", str(outside), traversal)
    }
    [status] = answers  # one generic answer: nothing about whether a file exists or its size
    assert "models folder" in status and "Still using" in status
    assert "bytes" not in status and "not found" not in status
    assert _load(services, "", mmproj="/etc/passwd")[1] == status

    inside = services.settings.models_dir / "mine.gguf"
    inside.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundled_model_path(), inside)
    _, ok = _load(services, str(inside))
    assert ok.startswith("✅") and services.models.info.path == str(inside)
    _, missing = _load(services, str(services.settings.models_dir / "gone.gguf"))
    assert "not found" in missing  # inside the folder the details help, and reveal nothing
    _, start_model = _load(services, str(bundled_model_path()))  # the model it started with
    assert start_model.startswith("✅")


def test_uploading_a_file_named_like_the_loaded_model_never_overwrites_it(services, tmp_path):
    loaded = services.settings.models_dir / "model.gguf"
    loaded.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundled_model_path(), loaded)
    assert _load(services, str(loaded))[1].startswith("✅")
    before = (loaded.stat().st_ino, hashlib.sha256(loaded.read_bytes()).hexdigest())

    upload_dir = tmp_path / "gradio-upload"
    upload_dir.mkdir()
    upload = upload_dir / "model.gguf"
    shutil.copyfile(bundled_model_path(), upload)
    _, status = _load(services, "", uploaded=str(upload))
    assert status.startswith("✅")
    new_path = Path(services.models.info.path)
    assert new_path != loaded and new_path.parent == loaded.parent and new_path.name == "model-2.gguf"
    assert (loaded.stat().st_ino, hashlib.sha256(loaded.read_bytes()).hexdigest()) == before
    assert not list(loaded.parent.glob(".upload-*"))  # no temp file left behind
    done, _ = run_turn(services, "Hello")
    assert done.text.strip()


def test_a_huge_context_is_clamped_to_what_the_model_was_trained_on(services):
    facts, status = _load(services, "", n_ctx=1_048_576)
    assert status.startswith("✅") and "Context set to 8,192 tokens instead of 1,048,576" in status
    assert services.models.info.n_ctx == 8192 and "trained on 8,192" in facts


def test_the_context_is_clamped_to_what_memory_holds():
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 dims, f16 K and V
    per_token = kv_bytes_per_token(n_layer=30, n_head=9, n_head_kv=3, n_embd=576)
    assert per_token == 30 * 3 * (64 * 2 + 64 * 2)
    assert (
        kv_bytes_per_token(n_layer=30, n_head=9, n_head_kv=3, n_embd=576, type_k="q8_0", type_v="q8_0")
        < per_token
    )
    n_ctx, note = fit_context(
        131_072, n_ctx_train=1_000_000, per_token=per_token, available=2**30, model_bytes=0
    )
    assert n_ctx < 131_072 and n_ctx * per_token <= 2**30 and n_ctx % 256 == 0
    assert "GiB of memory is free" in note
    assert fit_context(4096, n_ctx_train=8192, per_token=per_token, available=2**34, model_bytes=0) == (
        4096,
        "",
    )


def test_a_template_that_loops_for_hours_fails_the_turn_and_the_app_goes_on(services):
    hostile = (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    services.models.load(chat_template=hostile)
    with pytest.raises(GenerationError, match="took more than"):
        run_turn(services, "Hello")
    assert not [t for t in threading.enumerate() if t.name == "hearth-template"]  # the render was stopped
    services.models.load(chat_template=None)
    done, _ = run_turn(services, "Hello", GREEDY)
    assert done.text.strip()


def test_renders_reuse_one_template_thread_and_a_stopped_one_is_replaced():
    """Starting a thread per render cost 2.5-4 ms here: one long-lived thread serves them, a
    runaway render retires it, and a render asked for meanwhile gets a thread of its own."""
    from engine.backends import limits

    first = limits.call_with_deadline(threading.current_thread)
    assert first.name == "hearth-template" and limits.call_with_deadline(threading.current_thread) is first
    with pytest.raises(GenerationError, match="took more than"):
        limits.call_with_deadline(lambda: [x for x in iter(int, 1)], seconds=0.3)  # never ends
    assert not first.is_alive()
    again = limits.call_with_deadline(threading.current_thread)
    assert again is not first and again.is_alive()

    gate = threading.Event()
    busy = threading.Thread(target=limits.call_with_deadline, args=(lambda: gate.wait(30),))
    busy.start()
    while not gate.is_set() and limits._worker_lock.acquire(blocking=False):  # until the worker is taken
        limits._worker_lock.release()
    try:
        meanwhile = limits.call_with_deadline(threading.current_thread)
    finally:
        gate.set()
        busy.join()
    assert meanwhile is not again and meanwhile.name == "hearth-template"
    assert limits.call_with_deadline(threading.current_thread) is again


def test_loading_the_bundled_embedder_leaves_the_process_environment_alone():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = (
        "import os\n"
        "from engine.embeddings import TextEmbedder\n"
        "e = TextEmbedder()\n"
        "assert len(e.embed_one('a private note')) == 384\n"
        "print('HF_HUB_OFFLINE' in os.environ, 'TRANSFORMERS_OFFLINE' in os.environ)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False False"
