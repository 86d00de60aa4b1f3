"""Hearth on remote engines: a real llama-cpp-python OpenAI-compatible server (bundled GGUF,
API key required) runs the model, a real Chroma server holds the vectors. A whole chat with
Stop, a document question with sources, memory (archival facts, grammar-constrained tool
calls, model-written summaries) and the Model tab all go through them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from conftest import GREEDY, run_turn
from remote_servers import start_chroma_server, start_llama_server

import cli
from app import model_handlers as mh
from engine import GenerationConfig, Settings, build
from engine.backends.llama_cpp import LlamaCppBackend
from engine.backends.remote import RemoteBackend
from engine.errors import GenerationError
from engine.memory.agent import agent_messages, generate_call
from engine.memory.grammar import tool_call_grammar
from engine.memory.provenance import USER
from engine.types import Done, Message, Sources, TextDelta, TurnStarted

KEY = "sk-hearth-test-7f3a"
MANUAL = (
    "# Heron 7 dishwasher manual\n\n## Error codes\n\n"
    "Error E-47 means the drain filter is blocked. Remove the filter, rinse it under warm water, "
    "and restart the Heron 7.\n\n## Detergent\n\nUse one tablet per cycle; never use washing-up liquid.\n"
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("servers")
    llama = start_llama_server(tmp, api_key=KEY)
    try:
        chroma = start_chroma_server(tmp)
    except BaseException:
        llama.stop()
        raise
    yield llama, chroma
    llama.stop()
    chroma.stop()


def remote_settings(servers, data_dir: Path, **changes) -> Settings:
    llama, chroma = servers
    values = dict(backend_url=llama.url + "/v1", backend_key=KEY, backend_n_ctx=2048, chroma_url=chroma.url)
    return Settings(data_dir=data_dir, **{**values, **changes})


@pytest.fixture(scope="module")
def remote(servers, tmp_path_factory):
    services = build(remote_settings(servers, tmp_path_factory.mktemp("remote") / "data"))
    assert not services.warnings, services.warnings
    yield services
    services.close()


@pytest.fixture(scope="module")
def local_backend(tmp_path_factory):
    # flash attention on, as the server runs (not left to the CPU check: the answers are compared)
    settings = Settings(data_dir=tmp_path_factory.mktemp("local"), n_ctx=2048, flash_attn=True)
    backend = LlamaCppBackend(settings)
    yield backend
    backend.close()


def test_a_whole_chat_streams_through_the_server(remote, servers):
    backend = remote.models.backend
    assert isinstance(backend, RemoteBackend)
    assert (backend.info.backend, backend.info.path, backend.info.n_ctx) == ("remote", servers[0].url, 2048)
    first, text = run_turn(remote, "Say hello to me.")
    assert text.strip() and first.text == text and first.finish_reason in ("stop", "length")
    assert 0 < first.usage.completion_tokens <= GREEDY.max_tokens and first.usage.prompt_tokens > 0
    second, _ = run_turn(remote, "And now say goodbye.", conversation_id=first.conversation_id)
    saved = remote.conversations.messages(first.conversation_id)
    assert [m.role for m in saved] == ["user", "assistant", "user", "assistant"]
    assert (
        saved[1].content == text and saved[3].content == second.text and saved[3].model == backend.info.name
    )


def test_the_server_answers_as_the_in_process_engine_does(local_backend, tmp_path):
    """Greedy decoding of the same messages: the prompt and the samplers arrive intact.

    On a server of its own: llama-cpp-python's server reuses whatever its KV cache shares with
    a prompt, and after other requests (the module's chats) that cache's cells are in another
    order, which moves flash attention's sums enough to flip a near-tie."""
    messages = [
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="Name three colours."),
    ]
    config = GenerationConfig(temperature=0.0, max_tokens=24)
    server = start_llama_server(tmp_path)
    try:
        remote = RemoteBackend(
            Settings(data_dir=tmp_path / "d", backend_url=server.url + "/v1", backend_n_ctx=2048)
        )
        try:
            remote_text = "".join(c.text for c in remote.stream_chat(messages, config))
        finally:
            remote.close()
    finally:
        server.stop()
    local_text = "".join(c.text for c in local_backend.stream_chat(messages, config))
    assert remote_text.strip() and remote_text == local_text


def test_samplers_seed_max_tokens_and_grammar_reach_the_server(remote):
    backend = remote.models.backend
    messages = [Message(role="user", content="Write a poem about the sea.")]
    wild = GenerationConfig(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=11, max_tokens=16)
    first = "".join(c.text for c in backend.stream_chat(messages, wild))
    assert first == "".join(c.text for c in backend.stream_chat(messages, wild)), "the seed reached it"
    assert first != "".join(c.text for c in backend.stream_chat(messages, wild.replace(seed=12)))
    last = list(backend.stream_chat(messages, GREEDY.replace(max_tokens=3)))[-1]
    assert (last.finish_reason, last.usage.completion_tokens) == ("length", 3)
    question = [Message(role="user", content="Is the sea blue? Answer yes or no.")]
    grammar = 'root ::= "maybe-" ("yes" | "no")'
    answer = "".join(c.text for c in backend.stream_chat(question, GREEDY, grammar=grammar))
    assert answer in ("maybe-yes", "maybe-no")


def test_stop_closes_the_stream_and_keeps_the_partial_answer(remote):
    streamed, done, conversation_id = [], None, None
    for event in remote.chat.stream_turn(
        None, "Write a long story about a dragon and a knight.", GREEDY.replace(max_tokens=300)
    ):
        if isinstance(event, TurnStarted):
            conversation_id = event.conversation_id
        elif isinstance(event, TextDelta):
            streamed.append(event.text)
            if len(streamed) == 5:
                assert remote.chat.stop(conversation_id)
        elif isinstance(event, Done):
            done = event
    assert done.finish_reason == "cancelled" and 5 <= len(streamed) < 300
    saved = remote.conversations.message(done.message_id)
    assert saved.content == "".join(streamed) and saved.finish_reason == "cancelled"
    after, _ = run_turn(remote, "Hello again.", conversation_id=conversation_id)
    assert after.finish_reason in ("stop", "length"), "the server is free for the next answer"


def test_a_document_question_cites_its_source_with_vectors_on_the_chroma_server(remote, servers, tmp_path):
    manual = tmp_path / "heron7-manual.md"
    manual.write_text(MANUAL, encoding="utf-8")
    [result] = remote.documents.ingest_paths([manual], collection="library")
    assert result.status == "added"
    events = list(
        remote.chat.stream_turn(
            None,
            "What does error E-47 mean on the Heron 7?",
            GenerationConfig(temperature=0.0, max_tokens=48),
        )
    )
    hits = [h for h in next(e for e in events if isinstance(e, Sources)).hits if h.kind == "chunk"]
    done = next(e for e in events if isinstance(e, Done))
    assert hits and hits[0].source == "heron7-manual.md" and "E-47" in hits[0].text and done.text.strip()
    saved = remote.conversations.message(done.message_id).sources
    assert any(h["source"] == "heron7-manual.md" for h in saved)
    # the vectors live on the server, not in the data directory
    assert not remote.settings.chroma_dir.exists()
    api = servers[1].url + "/api/v2/tenants/default_tenant/databases/default_database/collections"
    on_server = {c["name"]: httpx.get(f"{api}/{c['id']}/count").json() for c in httpx.get(api).json()}
    assert any(name.startswith("hearth-docs") and n > 0 for name, n in on_server.items()), on_server


def test_archival_memory_feeds_an_answer_through_both_servers(remote):
    remote.memory.archival.insert("The user's cat is called Pickles and she is ginger.", origin=USER)
    events = list(remote.chat.stream_turn(None, "What is my cat called?", GREEDY))
    hits = next(e for e in events if isinstance(e, Sources)).hits
    assert any("Pickles" in h.text for h in hits if h.kind == "memory")


def test_grammar_constrained_memory_tool_calls_parse_through_the_server(remote):
    # an earlier turn's memory upkeep may still be asking the server as this starts
    backend, box = remote.models.backend, remote.memory.toolbox
    grammar = tool_call_grammar(box.schemas, choices={"label": ["persona", "human"]}, max_string_chars=40)
    for text in ("My cat is called Pickles.", "Remember my birthday is 3 May.", "Hello!"):
        output = generate_call(backend, agent_messages(box, "", text, compact=True), grammar, 80)
        box.parse(output)  # raises MemoryError_ unless the server applied the grammar
        assert json.loads(output)["tool"]


def test_hearths_own_requests_never_cut_each_others_answers(remote):
    # llama-cpp-python's server cuts a running stream short whenever another request arrives,
    # a token count included (the cut answer ends with [DONE] and no finish reason). Memory
    # upkeep counts tokens while the next answer streams: Hearth sends one request at a time.
    backend = remote.models.backend
    assert backend.kind.one_at_a_time
    config = GenerationConfig(temperature=0.0, max_tokens=32)
    results: dict[str, list] = {}
    counted: list[int] = []

    def ask(name: str, question: str) -> None:
        results[name] = list(backend.stream_chat([Message(role="user", content=question)], config))

    def count() -> None:
        counted.extend(backend.count_tokens(f"a fresh sentence number {i}") for i in range(5))

    jobs = [("a", "Name a colour."), ("b", "Name a fruit.")]
    threads = [threading.Thread(target=ask, args=job) for job in jobs] + [threading.Thread(target=count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert set(results) == {"a", "b"} and len(counted) == 5 and all(n > 0 for n in counted)
    for chunks in results.values():
        assert "".join(c.text for c in chunks).strip() and chunks[-1].usage.completion_tokens > 0


def test_an_answer_cut_by_another_client_is_an_error_not_an_empty_answer(remote, servers):
    backend = remote.models.backend
    story = [Message(role="user", content="Tell me a long story about a lighthouse keeper.")]
    chunks = backend.stream_chat(story, GenerationConfig(temperature=0.0, max_tokens=400))
    next(chunks)  # streaming (400 tokens take seconds): now another client asks the server something
    httpx.post(
        servers[0].url + "/extras/tokenize/count",
        json={"input": "hello"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    with pytest.raises(GenerationError, match="cut the answer short"):
        list(chunks)


def test_the_model_writes_summaries_through_the_server(servers, tmp_path):
    # a small --backend-n-ctx: the history overflows after a few turns
    services = build(remote_settings(servers, tmp_path / "data", backend_n_ctx=256))
    try:
        assert services.models.info.n_ctx == 256
        conversation_id = None
        for i in range(5):
            done, _ = run_turn(
                services,
                f"Question {i}: tell me one short fact about the number {i}, and "
                "also a short fact about the colour of the sky at dusk, please.",
                GREEDY.replace(max_tokens=8),
                conversation_id=conversation_id,
            )
            conversation_id = done.conversation_id
        summary = services.memory.summaries.get(conversation_id)
        assert summary.text.strip() and summary.folded >= 2
        writes = services.memory.log.list(target=f"summary:{conversation_id}")
        assert any(w.status == "applied" for w in writes), "the remote model wrote a summary"
    finally:
        services.close()


def test_token_counts_come_from_the_servers_tokenizer(remote, local_backend):
    backend = remote.models.backend
    assert backend.token_counts_exact
    for text in ("Hello world", " leading space", "Ünïcödé ✓ and emoji 🔥", "The quick brown fox " * 20):
        assert backend.count_tokens(text) == local_backend.count_tokens(text)
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Hi there")]
    assert backend.count_prompt_tokens(messages) >= local_backend.count_prompt_tokens(messages)


def test_the_model_tab_shows_the_server_and_switches_to_a_local_file_and_back(servers, tmp_path):
    llama = servers[0]
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048), load_model=False)
    try:
        facts, status = mh.connect_remote(services, llama.url, KEY, "", 2048)
        assert "Connected" in status and services.models.info.backend == "remote"
        assert "llama-cpp-python server" in facts and "typical\\_p" in facts and "2,048 tokens" in facts
        assert (
            "exact" in facts
            and llama.url in facts
            and mh.remote_models(services) == [services.models.info.name]
        )
        _, status = mh.connect_remote(services, llama.url, "wrong-key", "", "")
        assert "refused the key" in status and "Still using" in status
        _, status = mh.connect_remote(services, llama.url, "", "no-such-model", 2048)
        assert "has no model 'no-such-model'" in status and services.models.info.backend == "remote"
        facts, status = mh.load_model(
            services, "", None, 2048, "", "", 512, False, "f16", "f16", True, False, "", ""
        )
        assert "Loaded" in status and services.models.info.backend == "llama.cpp" and "quantization" in facts
        assert services.models.settings.backend_url is None
        _, status = mh.connect_remote(services, llama.url, "", "", 2048)
        assert "refused the key" in status, "the old key is not sent to a server the user did not name"
    finally:
        services.close()


def test_command_line_flags_and_key_files(servers, tmp_path, capsys):
    llama, chroma = servers
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    args = cli.global_parser().parse_args(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--backend-url",
            llama.url,
            "--backend-key-file",
            str(key_file),
            "--backend-n-ctx",
            "1024",
            "--backend-timeout",
            "30",
            "--chroma-url",
            chroma.url,
            "conversations",
        ]
    )
    settings = cli.settings_from(args)
    assert settings.backend_key == KEY and KEY not in repr(settings)
    assert (settings.backend_n_ctx, settings.backend_timeout, settings.chroma_url) == (1024, 30.0, chroma.url)
    code = cli.main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--backend-url",
            llama.url,
            "--backend-key-file",
            str(key_file),
            "chat",
            "Say hi.",
            "--max-tokens",
            "8",
            "--temperature",
            "0",
        ]
    )
    assert code == 0 and capsys.readouterr().out.strip()
    code = cli.main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--backend-key-file",
            str(tmp_path / "missing"),
            "conversations",
        ]
    )
    assert code == 2 and "backend key file" in capsys.readouterr().err
