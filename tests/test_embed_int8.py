"""The int8 path of the bundled embedder: a real export and quantization, real sessions, real
SQLite and Chroma; its vectors against torch's at the bar its probe holds."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from test_embed_onnx import TEXTS  # the same awkward texts: languages, length, markup

from engine import ConfigError, Settings, build
from engine.embed_onnx import export_path
from engine.embeddings import EXPORT_AFTER_TEXTS, PROBE_COSINE, TextEmbedder, bundled_embedder_path


def _cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    return (np.asarray(a) * np.asarray(b)).sum(axis=1)


@pytest.fixture(scope="module")
def torch_embedder() -> TextEmbedder:
    return TextEmbedder()


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory) -> Path:
    """An onnx folder holding the bundled model's int8 export, made the way ingest makes it."""
    folder = tmp_path_factory.mktemp("data") / "onnx"
    embedder = TextEmbedder(onnx_dir=folder, precision="int8")
    embedder.embed([f"chunk {n} of a big file" for n in range(EXPORT_AFTER_TEXTS)])
    deadline = time.monotonic() + 300  # a hang guard, not a speed check
    while embedder.onnx_state == "exporting" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert embedder.onnx_state == "ready" and embedder.variant() == "int8"
    return folder


def _data_dir_with(tmp_path: Path, int8_folder: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(int8_folder, data / "onnx")
    return data


def test_int8_export_is_quantized_and_close_to_torch(int8_folder, torch_embedder):
    import onnx

    target = export_path(int8_folder, bundled_embedder_path(), "int8")
    assert [p.name for p in int8_folder.iterdir()] == [target.name]  # keyed by precision, no temp files
    ops = {n.op_type for n in onnx.load(str(target)).graph.node}
    assert {"MatMulInteger", "QAttention"} <= ops and "MatMul" not in ops  # every weight is int8
    embedder = TextEmbedder(onnx_dir=int8_folder, precision="int8")
    passages = embedder.embed(TEXTS)
    assert embedder.variant() == "int8"
    cosines = _cosines(passages, torch_embedder.embed(TEXTS))
    assert cosines.min() >= PROBE_COSINE["int8"]
    assert cosines.min() < 0.99999  # really another path, not torch's vectors
    # questions go through the same path: with MiniLM (no prefixes) the same words, the same vector
    questions = embedder.embed_queries(TEXTS)
    assert _cosines(questions, passages).min() >= 0.99999


def test_a_corrupt_int8_export_falls_back_to_torch(tmp_path, torch_embedder):
    folder = tmp_path / "onnx"
    folder.mkdir()
    target = export_path(folder, bundled_embedder_path(), "int8")
    target.write_bytes(b"not an onnx graph")
    embedder = TextEmbedder(onnx_dir=folder, precision="int8")
    vectors = embedder.embed(TEXTS)
    assert embedder.onnx_state == "off" and embedder.variant() == "fp32"
    assert _cosines(vectors, torch_embedder.embed(TEXTS)).min() >= 0.9999
    assert not target.exists()  # the next start exports again


def test_an_int8_file_does_not_stand_in_for_fp32(int8_folder, tmp_path, torch_embedder):
    """An int8 graph under the fp32 name (a foreign file) fails fp32's exactness probe."""
    folder = tmp_path / "onnx"
    folder.mkdir()
    shutil.copyfile(
        export_path(int8_folder, bundled_embedder_path(), "int8"),
        export_path(folder, bundled_embedder_path()),
    )
    embedder = TextEmbedder(onnx_dir=folder, precision="fp32")
    vectors = embedder.embed(TEXTS)
    assert embedder.onnx_state == "off"
    assert _cosines(vectors, torch_embedder.embed(TEXTS)).min() >= 0.9999


def test_vector_cache_keeps_precisions_apart(int8_folder, tmp_path, torch_embedder):
    data = _data_dir_with(tmp_path, int8_folder)
    others = [f"{t} (a second copy)" for t in TEXTS]
    exact = build(Settings(data_dir=data, embed_precision="fp32"), load_model=False)
    try:
        fp32 = exact.documents.cached.embed(TEXTS)
        assert exact.documents.cached.misses == len(TEXTS)
    finally:
        exact.close()
    fast = build(Settings(data_dir=data, embed_precision="int8"), load_model=False)
    try:
        cached = fast.documents.cached
        # exact vectors serve int8 requests: an ingest begun on torch resumes on int8
        assert cached.embed(TEXTS) == fp32 and cached.hits == len(TEXTS) and cached.misses == 0
        int8 = cached.embed(others)
        assert cached.misses == len(others)
        assert _cosines(int8, torch_embedder.embed(others)).min() < 0.99999  # really int8's own
        assert cached.embed(others) == int8 and cached.hits == len(TEXTS) + len(others)
    finally:
        fast.close()
    again = build(Settings(data_dir=data, embed_precision="fp32"), load_model=False)
    try:
        cached = again.documents.cached
        assert cached.embed(others) != int8 and cached.misses == len(others)  # int8 never serves fp32
        with again.database.read() as db:
            assert db["rag_vector_cache"].count == len(TEXTS) + 2 * len(others)
        cached.forget([*TEXTS, *others])
        with again.database.read() as db:
            assert db["rag_vector_cache"].count == 0  # a deleted document's vectors go in both
    finally:
        again.close()


def test_embed_precision_flag_gives_torchs_vectors(int8_folder, tmp_path, torch_embedder):
    import cli

    data = _data_dir_with(tmp_path, int8_folder)
    default = cli.settings_from(cli.global_parser().parse_args(["--data-dir", str(data), "conversations"]))
    assert default.embed_precision == "int8"
    args = cli.global_parser().parse_args(
        ["--data-dir", str(data), "--embed-precision", "fp32", "conversations"]
    )
    services = build(cli.settings_from(args), load_model=False)
    try:
        embedder = services.documents.embedder
        vectors = embedder.embed(TEXTS)
        assert embedder.precision == "fp32" and embedder.variant() == "fp32"
        assert _cosines(vectors, torch_embedder.embed(TEXTS)).min() >= 0.9999
        assert _cosines(embedder.embed_queries(TEXTS), torch_embedder.embed_queries(TEXTS)).min() >= 0.9999
    finally:
        services.close()
    with pytest.raises(SystemExit):  # argparse refuses other values
        cli.global_parser().parse_args(["--embed-precision", "int4", "conversations"])
    with pytest.raises(ConfigError):
        Settings(data_dir=tmp_path / "x", embed_precision="int4")


def test_an_int8_export_with_other_weights_is_refused(int8_folder, tmp_path, torch_embedder):
    """A file that loads but gives vectors far from torch's (another model's) is not used."""
    import onnx
    from onnx import numpy_helper

    folder = tmp_path / "onnx"
    folder.mkdir()
    graph = onnx.load(str(export_path(int8_folder, bundled_embedder_path(), "int8")))
    biggest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    shuffled = numpy_helper.to_array(biggest)[::-1].copy()
    biggest.CopyFrom(numpy_helper.from_array(shuffled, biggest.name))
    onnx.save(graph, str(export_path(folder, bundled_embedder_path(), "int8")))
    embedder = TextEmbedder(onnx_dir=folder, precision="int8")
    vectors = embedder.embed(TEXTS)
    assert embedder.onnx_state == "off" and embedder.variant() == "fp32"
    assert _cosines(vectors, torch_embedder.embed(TEXTS)).min() >= 0.9999


def test_the_warm_up_opens_an_existing_export_for_questions(int8_folder, tmp_path):
    """Questions embed with ONNX from the first turn (about 15 ms a question with torch here)."""
    services = build(Settings(data_dir=_data_dir_with(tmp_path, int8_folder)), load_model=False)
    try:
        assert services.embedder.onnx_state == "new"
        services.embedder.prepare()
        assert services.embedder.onnx_state == "ready" and services.embedder.variant() == "int8"
    finally:
        services.close()
