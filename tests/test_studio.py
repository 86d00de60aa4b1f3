"""The sampling studio's engine side on the bundled model: provenance (re-run exactly), the
stored token traces and the next-token view, and preset files."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import run_turn

from engine import GenerationConfig, Settings, build
from engine.errors import ConfigError, ModelError, NotFoundError
from engine.studio.chain_view import view_position
from engine.studio.trace import TokenTrace
from engine.types import Message

SAMPLED = GenerationConfig(temperature=0.9, max_tokens=24)  # seed -1: one is drawn and recorded


@pytest.fixture
def quiet(tmp_path):
    """Memory off: the prompt of a re-run is exactly the first one's."""
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, memory=False))
    yield services
    services.close()


def test_each_answer_records_its_provenance_and_rerun_exactly_reproduces_it(quiet):
    done, text = run_turn(quiet, "Name three colours.", SAMPLED)
    stored = quiet.conversations.message(done.message_id)
    assert stored.config["seed"] != -1  # the drawn seed, not "random"
    path = quiet.models.info.path
    quiet.studio.hasher.wait(path)
    found = quiet.studio.details(done.message_id)
    assert found.seed == stored.config["seed"]
    assert found.model_sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert found.template_sha256 == quiet.models.info.template_sha256 and len(found.template_sha256) == 64
    assert found.hearth_version and found.backend == "llama.cpp"

    again, rerun = run_turn(
        quiet,
        "",
        GenerationConfig.from_values(stored.config),
        conversation_id=done.conversation_id,
        mode="regenerate",
    )
    assert rerun == text and again.message_id != done.message_id
    other, _ = run_turn(
        quiet, "", SAMPLED.replace(seed=found.seed + 1), done.conversation_id, mode="regenerate"
    )
    assert quiet.conversations.message(other.message_id).content != text  # the seed is what made it


def test_the_model_file_is_hashed_once_per_version(quiet, tmp_path):
    hasher = quiet.studio.hasher
    path = quiet.models.info.path
    hasher.wait(path)
    first = hasher._running[path]
    size, mtime, sha = hasher.lookup(path)
    assert sha is not None and hasher._running[path] is first  # cached by size + mtime: no new hashing
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(b"not really a model")
    assert hasher.lookup(str(copy))[2] is None  # a new file: hashed in the background ...
    hasher.wait(str(copy))
    assert hasher.lookup(str(copy))[2] == hashlib.sha256(b"not really a model").hexdigest()
    copy.write_bytes(b"changed")  # ... and again once it changes
    assert hasher.lookup(str(copy))[2] is None


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A greedy answer's trace from the backend, and the prompt tokens it followed."""
    from engine.backends.llama_cpp import LlamaCppBackend

    data = tmp_path_factory.mktemp("trace")
    backend = LlamaCppBackend(Settings(data_dir=data, n_ctx=1024, kv_snapshots=False))
    messages = [Message(role="user", content="Write one sentence about the sea.")]
    trace = TokenTrace()
    list(backend.stream_chat(messages, GenerationConfig(temperature=0.0, max_tokens=12), trace=trace))
    prompt = backend.render(messages)
    yield backend, trace, prompt
    backend.close()


def test_raw_probabilities_equal_llama_cpp_logprobs_for_the_same_prefix(traced):
    import llama_cpp

    backend, trace, prompt = traced
    stored = TokenTrace.from_bytes(trace.to_bytes(), n_tokens=len(trace), top_n=trace.top_n)
    # a second llama.cpp evaluating the prompt as the backend does (n_batch chunks, then one token at a time)
    flash = backend._llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    llm = llama_cpp.Llama(
        model_path=backend.info.path,
        n_ctx=1024,
        n_batch=backend._llm.n_batch,
        flash_attn=flash,
        verbose=False,
    )
    try:
        llm.eval(prompt)
        for i in range(len(stored)):
            # llama-cpp-python's own logprobs, from the logits llama.cpp just computed
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
            logprobs = llama_cpp.Llama.logits_to_logprobs(logits)
            raw = view_position(stored, i, GenerationConfig()).stages[0]
            for token, p in raw.kept:
                assert abs(p - math.exp(float(logprobs[token]))) < 1e-4
            assert [t for t, _ in raw.kept[:5]] == list(np.argsort(-logprobs, kind="stable")[:5])
            llm.eval([stored.ids[i]])
    finally:
        llm.close()


def test_top_k_one_leaves_one_candidate_and_temperature_reshapes(traced):
    _, trace, _ = traced
    one = view_position(trace, 2, GenerationConfig(top_k=1))
    top_k = next(s for s in one.stages if s.name == "top_k")
    assert len(top_k.kept) == 1 and top_k.kept[0][0] == trace.ids[2] and len(top_k.removed) == trace.top_n - 1
    assert one.stages[-1].kept == [(trace.ids[2], 1.0)]

    def final(temperature: float) -> dict[int, float]:
        plain = GenerationConfig(temperature=temperature, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
        return dict(view_position(trace, 2, plain).stages[-1].kept)

    cool, hot = final(0.5), final(2.0)
    raw = dict(view_position(trace, 2, GenerationConfig()).stages[0].kept)
    a, b = list(raw)[:2]
    # after top-k the candidates renormalise; temperature T raises each probability ratio to 1/T
    assert cool[a] / cool[b] == pytest.approx((raw[a] / raw[b]) ** 2, rel=1e-6)
    assert hot[a] / hot[b] == pytest.approx((raw[a] / raw[b]) ** 0.5, rel=1e-6)
    assert cool[a] > raw[a] > hot[a]
    greedy = view_position(trace, 2, GenerationConfig(temperature=0.0)).stages[-1]
    assert greedy.kept == [(a, 1.0)]


def test_the_view_says_why_it_cannot_show_an_answer(quiet):
    done, _ = run_turn(quiet, "Hello there.", SAMPLED)
    config = GenerationConfig()
    tokens = quiet.studio.answer_tokens(done.message_id, config)
    assert len(tokens.pieces) == quiet.conversations.message(done.message_id).completion_tokens
    assert quiet.studio.store.trace_bytes(done.message_id) == len(tokens.trace) * (16 + 8 * 40)

    old = quiet.conversations.add_message(done.conversation_id, "assistant", "from an older Hearth")
    with pytest.raises(NotFoundError, match="no next-token data"):
        quiet.studio.answer_tokens(old.id, config)

    with quiet.database.tx() as db:  # as if another model file had written it
        db["answer_provenance"].update(
            done.message_id, {"model_path": "/models/other.gguf", "model_sha256": "ab" * 32}
        )
    with pytest.raises(ModelError, match="model changed"):
        quiet.studio.answer_tokens(done.message_id, config)

    quiet.models.close()
    with pytest.raises(ModelError, match="No model is loaded"):
        quiet.studio.answer_tokens(done.message_id, config)


def test_presets_export_import_and_refuse_bad_files(quiet):
    presets = quiet.presets
    for name in ("Deterministic", "Creative", "Focused (min-p)", "Mirostat 2", "No loops (DRY + XTC)"):
        assert name in presets.names()
    assert (
        presets.get("Mirostat 2").mirostat_mode == 2
        and presets.get("No loops (DRY + XTC)").dry_multiplier > 0
    )
    text = presets.export("No loops (DRY + XTC)")
    mine = json.loads(text) | {"name": "Mine"}
    assert presets.import_file(json.dumps(mine)) == "Mine"
    assert presets.get("Mine") == presets.get("No loops (DRY + XTC)")

    before = (presets.names(), presets.get("Mine"))
    bad_files = {
        "not valid JSON": "{nope",
        "not a Hearth preset": json.dumps({"name": "x"}),
        "newer Hearth": json.dumps(mine | {"version": 2, "config": {"temperature": 0.1}}),
        "bad setting": json.dumps(mine | {"config": {"temperature": 9}}),
        "Unknown generation setting": json.dumps(mine | {"config": {"warp": 1}}),
        "built-in preset": json.dumps(mine | {"name": "Creative"}),
        "1 to 80 characters": json.dumps(mine | {"name": ""}),
    }
    for message, text in bad_files.items():
        with pytest.raises(ConfigError, match=message):
            presets.import_file(text)
    assert (presets.names(), presets.get("Mine")) == before  # nothing saved changed


def test_page_handlers_show_details_and_rerun_the_latest_answer_only(quiet):
    from app import studio_handlers as sh
    from app.controls import CONTROL_FIELDS

    first, _ = run_turn(quiet, "Say hello.", SAMPLED)
    seed = quiet.conversations.message(first.message_id).config["seed"]
    quiet.studio.hasher.wait(quiet.models.info.path)
    shown = sh.details(quiet, first.message_id)
    assert str(seed) in shown and quiet.studio.details(first.message_id).model_sha256 in shown
    values = dict(zip(CONTROL_FIELDS, sh.rerun_values(quiet, first.message_id), strict=True))
    assert values["seed"] == seed and values["temperature"] == SAMPLED.temperature
    run_turn(quiet, "And goodbye.", SAMPLED, conversation_id=first.conversation_id)
    with pytest.raises(ValueError, match="latest answer"):
        sh.rerun_values(quiet, first.message_id)
    assert sh.answer_choices(quiet, first.conversation_id)[1][1] == first.message_id


def test_cli_exports_and_imports_presets_and_refuses_a_newer_file(tmp_path, capsys):
    from cli import main

    data = ["--data-dir", str(tmp_path / "cli-data")]
    out = tmp_path / "focused.json"
    assert main([*data, "presets", "export", "Focused (min-p)", "--output", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert exported["version"] == 1 and exported["config"]["min_p"] == 0.1
    out.write_text(json.dumps(exported | {"name": "Focused copy"}))
    assert main([*data, "presets", "import", str(out)]) == 0
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(exported | {"name": "Later", "version": 7}))
    assert main([*data, "presets", "import", str(newer)]) == 2
    assert "newer Hearth" in capsys.readouterr().err
    assert main([*data, "presets", "list"]) == 0
    listed = capsys.readouterr().out
    assert "Focused copy" in listed and "Later" not in listed
