"""Flash attention on a CPU: measured once per machine, remembered, and what the model loads with."""

from __future__ import annotations

import json
import math

import llama_cpp
import pytest

from app import model_handlers as mh
from engine import Settings, build
from engine.backends import amx_check, attention_check
from engine.backends.gguf_files import bundled_model_path
from engine.backends.machine_facts import VERDICTS, machine_key, recall, remember


def _key(threads: int) -> str:
    return f"flash-attn:{machine_key(llama_cpp)}:{threads}"


@pytest.fixture
def no_child(monkeypatch):
    """Fails the test if the check's child would run."""

    def refuse(*args):
        raise AssertionError("the check ran")

    monkeypatch.setattr(attention_check, "_timed_in_child", refuse)


def test_the_child_times_both_kernels_on_the_bundled_model(tmp_path):
    amx_check.guard(llama_cpp, bundled_model_path(), tmp_path)  # the kernels a model would load with
    plain = amx_check.plain_buffers(llama_cpp)
    speeds = attention_check._timed_in_child.__wrapped__("unused-key", 1, plain)  # no memo: a real child
    assert set(speeds) == {"on", "off"}
    assert all(math.isfinite(v) and 1 < v < 100_000 for v in speeds.values()), speeds


def test_the_faster_kernel_is_chosen_with_its_batch_size_and_the_verdict_is_kept(tmp_path, monkeypatch):
    runs = []

    def child(key, threads, plain):
        runs.append(threads)
        return {"on": 50.0, "off": 80.0}

    monkeypatch.setattr(attention_check, "_timed_in_child", child)
    settings = Settings(data_dir=tmp_path)
    chosen = attention_check.choose(llama_cpp, settings, on_gpu=False, threads=3)
    assert (chosen.flash, chosen.n_batch) == (False, attention_check.PLAIN_BATCH)
    assert chosen.note.startswith("off (measured") and "1.60x" in chosen.note
    assert recall(tmp_path, _key(3)) == {"on": 50.0, "off": 80.0} and runs == [3]
    attention_check.choose(llama_cpp, settings, on_gpu=False, threads=3)
    assert runs == [3]  # the kept verdict answered
    # going without must be clearly faster: within the margin flash attention stays on
    remember(tmp_path, _key(3), {"on": 80.0, "off": 82.0})
    chosen = attention_check.choose(llama_cpp, settings, on_gpu=False, threads=3)
    assert (chosen.flash, chosen.n_batch) == (True, attention_check.FLASH_BATCH)
    # without flash attention a batch's scores span the whole context: long contexts batch less
    assert [attention_check.plain_batch(n) for n in (2048, 8192, 32768, 1 << 20)] == [512, 512, 128, 64]
    remember(tmp_path, _key(3), {"on": 50.0, "off": 80.0})
    assert attention_check.choose(llama_cpp, settings, on_gpu=False, threads=3, n_ctx=65536).n_batch == 64
    # a set batch size is kept either way
    chosen = attention_check.choose(llama_cpp, settings.replace(n_batch=200), on_gpu=False, threads=3)
    assert chosen.n_batch == 200


def test_a_damaged_verdict_is_measured_again_and_a_failed_check_keeps_flash_attention(tmp_path, monkeypatch):
    (tmp_path / VERDICTS).write_text(json.dumps({_key(2): {"on": "fast", "off": -1}}))
    monkeypatch.setattr(attention_check, "_timed_in_child", lambda key, threads, plain: None)
    chosen = attention_check.choose(llama_cpp, Settings(data_dir=tmp_path), on_gpu=False, threads=2)
    assert chosen.flash and "could not run" in chosen.note
    assert recall(tmp_path, _key(2)) == {"on": "fast", "off": -1}  # nothing new was written


def test_a_set_choice_or_a_gpu_runs_no_check(tmp_path, no_child):
    settings = Settings(data_dir=tmp_path)
    for flash in (True, False):
        chosen = attention_check.choose(
            llama_cpp, settings.replace(flash_attn=flash), on_gpu=False, threads=2
        )
        assert chosen.flash is flash and chosen.note.endswith("(set)")
    chosen = attention_check.choose(llama_cpp, settings, on_gpu=True, threads=2)
    assert chosen.flash and chosen.note == "on (GPU)"
    assert not (tmp_path / VERDICTS).exists()


@pytest.mark.parametrize("faster", ["on", "off"])
def test_the_model_loads_as_the_verdict_says(tmp_path, faster):
    """The real bundled model under each verdict: llama.cpp's context, its batch size, the KV
    reuse rule the load-time probe finds, and the Model tab."""
    data = tmp_path / "data"
    services = build(Settings(data_dir=data, n_ctx=1024, memory=False, kv_snapshots=False))
    try:  # the verdict for this machine and the thread count the backend plans
        threads = services.models.info.n_threads
        remember(data, _key(threads), {"on": 90.0 if faster == "on" else 40.0, "off": 60.0})
        services.models.load()  # a reload reads it
        llm, info = services.models.backend._llm, services.models.info
        flash = llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        assert flash is (faster == "on")
        assert llm.n_batch == (attention_check.FLASH_BATCH if flash else attention_check.PLAIN_BATCH)
        # without flash attention every batch computes alike on a CPU: every cached token is reusable
        assert services.models.backend._reuse.rule.any_batch
        assert info.attention_note.startswith(faster) and info.attention_note in mh.model_facts(services)
    finally:
        services.close()


def test_the_model_tab_sets_flash_attention_and_an_empty_batch_box_means_auto(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=1024, memory=False, kv_snapshots=False))
    try:
        for choice, n_batch, want_flash, want_batch in (
            ("on", 0, True, 63),
            ("off", None, False, 512),
            ("off", 200, False, 200),
        ):
            _, status = mh.load_model(
                services, "", None, 1024, "", "", n_batch, choice, "f16", "f16", True, False, ""
            )
            assert status.startswith("✅"), status
            llm = services.models.backend._llm
            assert (
                llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            ) is want_flash
            assert llm.n_batch == want_batch
            assert services.models.info.attention_note == f"{choice} (set)"
    finally:
        services.close()
