"""The ONNX Runtime path of the bundled embedder: real export, real sessions, torch's vectors."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from engine.embed_export import exportable
from engine.embed_onnx import export_path, model_key
from engine.embeddings import EXPORT_AFTER_TEXTS, TextEmbedder, bundled_embedder_path

TEXTS = [
    "How do I restore a backup of my notes?",
    "Die Konfigurationsdatei wird beim Start gelesen und danach nie wieder.",
    "RLHF:PPO近端策略优化 keeps the new policy close to the old one（信任域）。",
    "离线同步：笔记在本地加密保存，只有在用户确认后才上传到服务器。" * 20,  # far past 256 tokens
    "- item one\n- item two\n\n```\ncode block\n```",
    "x",
]


def _wait(embedder: TextEmbedder) -> None:
    deadline = time.monotonic() + 300  # a hang guard, not a speed check
    while embedder.onnx_state == "exporting" and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module")
def torch_embedder() -> TextEmbedder:
    return TextEmbedder()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, torch_embedder) -> Path:
    """An onnx folder holding the bundled model's export, made the way ingest makes it."""
    folder = tmp_path_factory.mktemp("data") / "onnx"
    embedder = TextEmbedder(onnx_dir=folder)
    embedder.embed([f"chunk {n} of a big file" for n in range(EXPORT_AFTER_TEXTS)])
    _wait(embedder)
    assert embedder.onnx_state == "ready"
    return folder


def _lowest_cosine(a: list[list[float]], b: list[list[float]]) -> float:
    return float((np.asarray(a) * np.asarray(b)).sum(axis=1).min())


def test_export_gives_torchs_vectors_for_passages_and_queries(exported, torch_embedder):
    target = export_path(exported, bundled_embedder_path())
    assert [p.name for p in exported.iterdir()] == [target.name]  # no temp files left beside it
    embedder = TextEmbedder(onnx_dir=exported)
    passages = embedder.embed(TEXTS)
    assert embedder.onnx_state == "ready"  # an existing export is used from the first call
    assert _lowest_cosine(passages, torch_embedder.embed(TEXTS)) >= 0.9999
    questions = embedder.embed_queries(TEXTS)
    assert _lowest_cosine(questions, torch_embedder.embed_queries(TEXTS)) >= 0.9999
    # a question and the same words as a passage meet at the same point (MiniLM has no prefixes)
    assert _lowest_cosine(questions, passages) >= 0.9999


def test_a_corrupt_export_falls_back_to_torch(exported, tmp_path, torch_embedder, caplog):
    folder = tmp_path / "onnx"
    folder.mkdir()
    target = export_path(folder, bundled_embedder_path())
    target.write_bytes(b"not an onnx graph")
    embedder = TextEmbedder(onnx_dir=folder)
    with caplog.at_level(logging.WARNING, logger="hearth.embed"):
        vectors = embedder.embed(TEXTS)
    assert embedder.onnx_state == "off"
    assert _lowest_cosine(vectors, torch_embedder.embed(TEXTS)) >= 0.9999
    assert not target.exists()  # the next start exports again
    assert any("embedding with torch" in r.getMessage() for r in caplog.records)


def test_an_export_with_other_weights_is_refused(exported, tmp_path, torch_embedder):
    """A file that loads but gives other vectors (a different model's) is not used."""
    folder = tmp_path / "onnx"
    folder.mkdir()
    good = export_path(exported, bundled_embedder_path())
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(good))
    biggest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    shuffled = numpy_helper.to_array(biggest)[::-1].copy()
    biggest.CopyFrom(numpy_helper.from_array(shuffled, biggest.name))
    onnx.save(graph, str(export_path(folder, bundled_embedder_path())))
    embedder = TextEmbedder(onnx_dir=folder)
    vectors = embedder.embed(TEXTS)
    assert embedder.onnx_state == "off"
    assert _lowest_cosine(vectors, torch_embedder.embed(TEXTS)) >= 0.9999


def test_small_calls_never_export(tmp_path):
    embedder = TextEmbedder(onnx_dir=tmp_path / "onnx")
    embedder.embed(TEXTS)
    embedder.embed_queries(["where is my backup?"])
    assert embedder.onnx_state == "new"
    assert not (tmp_path / "onnx").exists()


def test_export_is_keyed_by_the_model_files(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(bundled_embedder_path(), model, ignore=shutil.ignore_patterns("*.safetensors"))
    (model / "model.safetensors").write_bytes(b"weights one")
    before = model_key(model)
    (model / "model.safetensors").write_bytes(b"weights two!")
    assert model_key(model) != before
    assert exportable(model)
    (model / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "x.Transformer"}]')
    assert not exportable(model)  # no mean pooling: torch only


def test_no_onnx_dir_means_torch(torch_embedder):
    torch_embedder.embed([f"text {n}" for n in range(EXPORT_AFTER_TEXTS)])
    assert torch_embedder.onnx_state == "off"


def test_settings_put_exports_in_the_data_dir(tmp_path):
    from engine import Settings, build

    on = build(Settings(data_dir=tmp_path / "a"), load_model=False)
    off = build(Settings(data_dir=tmp_path / "b", embed_onnx=False), load_model=False)
    try:
        assert on.documents.embedder.onnx_dir == tmp_path / "a" / "onnx"
        assert off.documents.embedder.onnx_state == "off"
    finally:
        on.close()
        off.close()


def test_concurrent_callers_get_torchs_vectors(exported, torch_embedder):
    """Questions embedded while an ingest embeds (chat during an ingest) share the encoder."""
    from concurrent.futures import ThreadPoolExecutor

    embedder = TextEmbedder(onnx_dir=exported)
    many = [f"{text} ({n})" for n in range(8) for text in TEXTS]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(embedder.embed, [many[n::4] for n in range(4)]))
    assert embedder.onnx_state == "ready"
    for n, vectors in enumerate(results):
        assert _lowest_cosine(vectors, torch_embedder.embed(many[n::4])) >= 0.9999


def test_a_process_that_ends_during_the_export_waits_for_it_and_exits_cleanly(tmp_path):
    """A CLI ingest in a fresh data directory starts the one-time export, then may end before
    it does: a daemon export thread, inside torch when the interpreter shut down, aborted the
    process (exit 134, one run in three). The process now waits for the export to finish."""
    import subprocess
    import sys

    script = (
        "import logging, sys; from pathlib import Path\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from engine.embeddings import EXPORT_AFTER_TEXTS, TextEmbedder, bundled_embedder_path\n"
        f"e = TextEmbedder(str(bundled_embedder_path()), onnx_dir=Path({str(tmp_path / 'onnx')!r}))\n"
        "e.embed([f'chunk {n}' for n in range(EXPORT_AFTER_TEXTS)])\n"
        "print('main done', e.onnx_state, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "main done exporting" in done.stdout  # the main thread ended while the export ran
    assert "Embedding with ONNX Runtime" in done.stderr  # and the process waited for it to finish
