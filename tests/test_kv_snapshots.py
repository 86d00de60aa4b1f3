"""KV snapshots per conversation on the bundled model: restore, restart, misses, budgets."""

from __future__ import annotations

import logging
import stat
from array import array

import pytest
from conftest import GREEDY, run_turn

from engine import GenerationConfig, Settings, build
from engine.backends.chunk_rule import ChunkRule, reusable_prefix
from engine.backends.kv_snapshots import KvSnapshotStore, Snapshot
from engine.backends.llama_cpp import LlamaCppBackend
from engine.types import Message

ANSWER = GenerationConfig(temperature=0.0, max_tokens=24)
SYSTEM = Message(role="system", content="You are a concise assistant. Answer in one sentence.")


def conversation(topic: str, turns: int) -> list[Message]:
    msgs = [SYSTEM]
    for i in range(turns):
        msgs.append(
            Message(role="user", content=f"Tell me fact number {i + 1} about {topic}, with some detail.")
        )
        msgs.append(
            Message(role="assistant", content=f"Fact {i + 1}: {topic} are interesting in many ways " * 3)
        )
    return msgs


def ask(backend, msgs, key, question="Which fact was the most surprising?"):
    chunks = list(backend.stream_chat([*msgs, Message(role="user", content=question)], ANSWER, cache_key=key))
    return "".join(c.text for c in chunks), chunks[-1].usage


def backend_for(tmp_path, **changes) -> LlamaCppBackend:
    settings = Settings(data_dir=tmp_path / "data", n_ctx=2048, n_batch=63, **changes)
    return LlamaCppBackend(settings)


@pytest.fixture
def fresh_answers(tmp_path):
    """What a cold evaluation (no snapshots, empty KV) answers."""
    backend = backend_for(tmp_path / "fresh", kv_snapshots=False)
    yield lambda msgs: (backend.clear_cache(), ask(backend, msgs, None)[0])[1]
    backend.close()


def test_switching_back_restores_and_answers_like_a_fresh_evaluation(tmp_path, fresh_answers):
    backend = backend_for(tmp_path)
    try:
        a, b = conversation("rivers", 4), conversation("volcanoes", 3)
        ask(backend, a, "A")
        ask(backend, b, "B")
        text, usage = ask(backend, a, "A")
        assert backend._kv.last_source == "restored"
        assert usage.cached_tokens >= 64
        assert backend._reuse.rule.any_batch or usage.cached_tokens % 64 == 0  # clean, aligned reuse
        assert text == fresh_answers(a)
    finally:
        backend.close()


def test_restart_restores_from_disk(tmp_path):
    a = conversation("deserts", 4)
    first = backend_for(tmp_path)
    ask(first, a, "A")
    first.close()  # flushes the disk tier
    files = list((tmp_path / "data/kv").glob("*.kv"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    second = backend_for(tmp_path)
    try:
        text, usage = ask(second, a, "A", "And the least surprising one?")
        assert second._kv.last_source == "restored" and usage.cached_tokens >= 64
        assert text == fresh_answers_for(tmp_path, a, "And the least surprising one?")
    finally:
        second.close()


def fresh_answers_for(tmp_path, msgs, question):
    cold = backend_for(tmp_path / "cold", kv_snapshots=False)
    try:
        return ask(cold, msgs, None, question)[0]
    finally:
        cold.close()


@pytest.mark.parametrize("change", [{"n_ctx": 1024}, {"model_copy": True}])
def test_snapshot_of_other_settings_or_model_is_a_miss(tmp_path, change, caplog):
    a = conversation("forests", 3)
    first = backend_for(tmp_path)
    expected = ask(first, a, "A")[0]
    first.close()
    kwargs = {}
    if "n_ctx" in change:
        kwargs["n_ctx"] = change["n_ctx"]
    second = LlamaCppBackend(
        Settings(data_dir=tmp_path / "data", n_batch=63, **{"n_ctx": 2048, **kwargs}),
        path=_model_copy(tmp_path) if "model_copy" in change else None,
    )
    try:
        with caplog.at_level(logging.INFO, logger="hearth.kv"):
            text, usage = ask(second, a, "A")
        assert second._kv.last_source == "fresh" and usage.cached_tokens == 0
        assert "another model or settings" in caplog.text
        assert text == expected  # the turn still answers, as a cold one would
    finally:
        second.close()


def _model_copy(tmp_path):
    import shutil

    from engine.backends.llama_cpp import bundled_model_path

    copy = tmp_path / "copy.gguf"
    shutil.copyfile(bundled_model_path(), copy)
    return copy


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_snapshot_file_is_ignored_with_a_log_line(tmp_path, damage, caplog):
    a = conversation("oceans", 3)
    first = backend_for(tmp_path)
    expected = ask(first, a, "A")[0]
    first.close()
    (path,) = (tmp_path / "data/kv").glob("*.kv")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        path.write_bytes(b"not a snapshot at all" * 100)
    second = backend_for(tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="hearth.kv"):
            text, usage = ask(second, a, "A")
        assert second._kv.last_source == "fresh" and "ignored" in caplog.text
        assert text == expected
    finally:
        second.close()


def test_ram_and_disk_budgets_evict_least_recently_used(tmp_path):
    # real snapshots of ~130-token conversations are ~3 MB each
    backend = backend_for(tmp_path, kv_cache_ram_mb=7, kv_cache_disk_mb=10)
    try:
        store = backend._kv.store
        for key in ("A", "B", "C", "D", "E"):
            ask(backend, conversation(key, 2), key)
            store.flush()
            assert store.ram_used <= 7 * 1024 * 1024
            assert store.disk_used() <= 10 * 1024 * 1024
        kept = store.ram_keys()
        assert kept and kept[-1] == "E" and "A" not in kept
        assert store.get("E") is not None and store.get("A") is None  # A left both tiers
    finally:
        backend.close()


def _snap(n_bytes: int, clean: int = 0) -> Snapshot:
    return Snapshot(tokens=array("i", [1, 2, 3]), clean=clean, state=bytearray(n_bytes))


def test_store_lru_order_follows_use(tmp_path):
    mb = 1024 * 1024
    store = KvSnapshotStore(
        tmp_path / "kv", fingerprint="f", ram_bytes=int(2.5 * mb), disk_bytes=int(2.5 * mb)
    )
    store.put("a", _snap(mb))
    store.put("b", _snap(mb))
    store.flush()
    assert store.get("a") is not None  # a is now the most recent in both tiers
    store.put("c", _snap(mb))
    store.flush()
    assert store.ram_keys() == ["a", "c"]
    other = KvSnapshotStore(tmp_path / "kv", fingerprint="f", ram_bytes=0, disk_bytes=int(2.5 * mb))
    assert other.get("b") is None and other.get("a") is not None and other.get("c") is not None
    foreign = KvSnapshotStore(tmp_path / "kv", fingerprint="g", ram_bytes=mb, disk_bytes=mb)
    assert foreign.get("a") is None


def test_any_batch_rule_reuses_every_clean_token_and_never_makes_a_batch_of_one():
    rule = ChunkRule(64, min_batch=2)
    assert rule.any_batch
    assert rule.reusable(common=300, clean=257, prompt_len=400) == 257
    assert rule.reusable(common=400, clean=512, prompt_len=400) == 398  # two left: no batch of one
    assert rule.boundary(1) == 0 and rule.boundary(77) == 77
    for n in range(2, 300):
        sizes = rule.sizes(n)
        assert sum(sizes) == n and all(2 <= size <= 64 for size in sizes)
    assert ChunkRule(64).reusable(common=300, clean=256, prompt_len=400) == 256
    assert ChunkRule(64).name != rule.name  # snapshots of one rule are misses under the other


def test_min_batch_rule_keeps_every_batch_at_the_tiled_kernels_size():
    rule = ChunkRule(512, min_batch=64)
    assert not rule.any_batch and len({rule.name, ChunkRule(512, min_batch=2).name, ChunkRule(512).name}) == 3
    assert rule.reusable(common=300, clean=257, prompt_len=400) == 257
    assert rule.reusable(common=400, clean=512, prompt_len=400) == 336  # the new part: 64 at least
    assert rule.reusable(common=50, clean=50, prompt_len=60) == 0  # a prompt under 64: one batch
    assert rule.boundary(63) == 0 and rule.boundary(64) == 64 and rule.boundary(777) == 777
    assert rule.sizes(40) == [40]
    for n in range(64, 2000):
        sizes = rule.sizes(n)
        assert sum(sizes) == n and all(64 <= size <= 512 for size in sizes)


def test_clean_boundary_rule():
    assert reusable_prefix(common=300, clean=256, n_batch=64, prompt_len=400) == 256
    assert reusable_prefix(common=200, clean=256, n_batch=64, prompt_len=400) == 192
    assert reusable_prefix(common=400, clean=512, n_batch=64, prompt_len=400) == 384  # one token left to eval


def test_chat_service_turns_are_keyed_by_conversation(tmp_path):
    services = build(Settings(data_dir=tmp_path / "d", n_ctx=2048, n_batch=64, memory=False))
    try:
        long_question = (
            "Tell me about rivers and lakes in detail: " + "their sources, mouths and floods, " * 12
        )
        done_a, _ = run_turn(services, long_question, GREEDY)  # over two n_batch chunks: a clean prefix
        done_b, _ = run_turn(services, "Tell me about mountains.", GREEDY)
        done, _ = run_turn(services, "And the longest river?", GREEDY, conversation_id=done_a.conversation_id)
        kv = services.models.backend._kv
        assert kv.live_key == done_a.conversation_id and kv.last_source == "restored"
        assert done.usage.cached_tokens >= 64
    finally:
        services.close()


def test_the_next_turn_reuses_the_last_answer_once_upkeep_settled_it(tmp_path):
    # memory off: settling is the chat's own upkeep, not memory's
    services = build(Settings(data_dir=tmp_path / "d", n_ctx=2048, n_batch=16, memory=False))
    try:
        long = GenerationConfig(temperature=0.0, max_tokens=80)
        first, text = run_turn(services, "Write a short story about a lighthouse keeper.", long)
        services.chat.wait_for_upkeep()
        assert first.usage.completion_tokens >= 32
        kv = services.models.backend._kv
        assert kv.store.get(first.conversation_id).clean > first.usage.prompt_tokens  # the snapshot too
        second, _ = run_turn(services, "Give it a title.", GREEDY, conversation_id=first.conversation_id)
        # the answer's whole chunks were reused, not only the first prompt's
        assert second.usage.cached_tokens > first.usage.prompt_tokens
    finally:
        services.close()
