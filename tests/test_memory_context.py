"""The context manager on the real bundled model with a small context (n_ctx 512).

A long chat never overflows: the oldest messages are folded into a model-written
summary and stay findable in recall memory; a fact from turn 1 comes back on turn 40;
core memory edits reach the next prompt; everything survives a restart.
"""

from __future__ import annotations

import threading

import pytest
from backend_doubles import DelegatingBackend

from engine import GenerationConfig, Settings, build
from engine.backends.llama_cpp import LlamaCppBackend
from engine.errors import GenerationError
from engine.memory.context import _content_words, _redundant, _shown_words
from engine.memory.provenance import USER
from engine.memory.summary import SUMMARY_REQUEST, choose_eviction
from engine.store import StoredMessage
from engine.types import Chunk, ContextReport, Done, Message, Sources, Usage

N_CTX = 512
TURN = GenerationConfig(temperature=0.0, max_tokens=10)
FACT = "My cat's name is Pickles and she is ginger."
FILLER = [
    "Tell me about the sea.",
    "What is rain?",
    "Name a fruit.",
    "How do birds fly?",
    "What is a star?",
    "Why is the sky blue?",
    "What is bread made of?",
    "Describe a forest.",
    "What is a river?",
    "How does a clock work?",
    "What is snow?",
    "Tell me about mountains.",
    "What do bees do?",
    "How are rainbows made?",
    "What is a volcano?",
    "Why do leaves fall?",
    "What is thunder?",
    "How do fish breathe?",
    "What is a desert?",
    "Tell me about the moon.",
    "What is wind?",
    "How is glass made?",
    "What do owls eat?",
    "Describe a city.",
    "What is a comet?",
    "How do plants grow?",
    "What is an island?",
    "Tell me about trains.",
    "What is a cloud?",
    "How do magnets work?",
    "What is honey?",
    "Describe autumn.",
    "What is a glacier?",
    "How do ships float?",
    "What is fog?",
    "Tell me about bridges.",
    "What is a lake?",
    "How does soap clean?",
]


class RecordingBackend(DelegatingBackend):
    """The real llama.cpp backend, recording every request; optionally failing chosen ones."""

    def __init__(self, inner: LlamaCppBackend, fail_if=None):
        super().__init__(inner)
        self.requests: list[tuple[list[Message], str | None]] = []
        self.fail_if = fail_if
        #: (messages, grammar) -> text to answer instead of the model (fault injection), or None
        self.reply_instead = None
        self.lock = threading.Lock()

    def stream_chat(
        self, messages, config, *, cancel=None, grammar=None, images=(), logprobs=None, cache_key=None, **_
    ):
        return self._recorded(messages, config, cancel, grammar, images, logprobs, cache_key)

    def _recorded(self, messages, config, cancel, grammar, images, logprobs, cache_key):
        with self.lock:
            self.requests.append((list(messages), grammar))
        if self.fail_if and self.fail_if(messages, grammar):
            raise GenerationError("injected failure: the model crashed")
        instead = self.reply_instead(messages, grammar) if self.reply_instead else None
        if instead is not None:
            yield Chunk(text=instead, finish_reason="stop", usage=Usage(n_ctx=self.info.n_ctx))
            return
        yield from super().stream_chat(
            messages,
            config,
            cancel=cancel,
            grammar=grammar,
            images=images,
            logprobs=logprobs,
            cache_key=cache_key,
        )

    def chat_prompts(self) -> list[list[Message]]:
        """Requests that were answers (not summaries or tool calls)."""
        return [m for m, g in self.requests if g is None and SUMMARY_REQUEST[:40] not in m[-1].content]


def is_summary_request(messages, grammar) -> bool:
    return grammar is None and SUMMARY_REQUEST[:40] in messages[-1].content


#: n_batch of the long chat (KV reuse is counted in whole n_batch chunks)
REUSE_BATCH = 32


def make_services(data_dir, fail_if=None, **settings):
    box = {}

    def factory(s):
        inner = LlamaCppBackend(s)
        box["backend"] = RecordingBackend(inner, fail_if)
        return box["backend"]

    # one thread for generation and prompt batches: llama.cpp's threads spin when the
    # machine's cores are oversubscribed (5-10x slower on shared CI machines)
    settings = {"n_threads": 1, **settings}
    services = build(Settings(data_dir=data_dir, n_ctx=N_CTX, **settings), backend_factory=factory)
    return services, box["backend"]


def turn(services, conversation_id, text):
    report, done, sources = None, None, []
    for event in services.chat.stream_turn(conversation_id, text, TURN):
        if isinstance(event, ContextReport):
            report = event
        elif isinstance(event, Sources):
            sources = event.hits
        elif isinstance(event, Done):
            done = event
    services.chat.wait_for_upkeep()  # the summary is written once the answer is saved
    return report, done, sources


@pytest.fixture(scope="module")
def long_chat(tmp_path_factory):
    """A 40-turn chat at n_ctx 512, turn 1 states a fact that turn 40 asks about."""
    data_dir = tmp_path_factory.mktemp("long")
    # prompts here stay under 512 tokens: a small n_batch lets whole chunks of them be reused
    services, backend = make_services(data_dir, n_batch=REUSE_BATCH)
    questions = [FACT] + FILLER[:38] + ["What is my cat's name?"]
    conversation_id, turns = None, []
    for text in questions:
        report, done, sources = turn(services, conversation_id, text)  # raises if the context overflowed
        conversation_id = done.conversation_id
        turns.append((report, done, sources, services.memory.summaries.get(conversation_id)))
    yield services, backend, conversation_id, turns, data_dir
    services.close()


def test_forty_turns_fit_in_512_tokens(long_chat):
    services, backend, conversation_id, turns, _ = long_chat
    assert len(turns) == 40
    for report, done, _, _ in turns:
        assert done.finish_reason in ("stop", "length")
        assert done.text.strip()
        assert sum(report.sections.values()) <= report.budget
        assert done.usage.prompt_tokens + TURN.max_tokens <= N_CTX
    messages = services.conversations.messages(conversation_id)
    assert len(messages) == 80, "every question and answer is saved"


def test_a_summary_replaces_evicted_messages(long_chat):
    services, backend, conversation_id, turns, _ = long_chat
    summary = services.memory.summaries.get(conversation_id)
    assert summary.text.strip()
    assert summary.through_seq > 10 and summary.folded >= 10
    assert any(is_summary_request(m, g) for m, g in backend.requests), "the model wrote the summary"
    # the last prompt carried the summary as it stood after turn 39, and only the messages after it
    used = turns[-2][3]
    last_prompt = backend.chat_prompts()[-1]
    assert "Summary of the earlier part of this conversation" in last_prompt[0].content
    assert used.text.strip()[:30] in last_prompt[0].content
    messages = services.conversations.messages(conversation_id)
    window = [m.sent for m in messages[:-2] if m.seq > used.through_seq]  # as sent (quoted memories kept)
    history = [m.content for m in last_prompt[1:-1]]
    assert history and window[-len(history) :] == history
    writes = services.memory.log.list(target=f"summary:{conversation_id}")
    assert len(writes) >= 2
    assert all(w.origin == "system" and w.status in ("applied", "fallback") for w in writes)


def test_evicted_messages_are_found_by_recall_search(long_chat):
    services, _, conversation_id, _, _ = long_chat
    summary = services.memory.summaries.get(conversation_id)
    first = services.conversations.messages(conversation_id)[0]
    assert first.seq <= summary.through_seq, "turn 1 left the window"
    found = services.memory.recall.search("ginger cat Pickles", conversation_id=conversation_id)
    assert first.id in [r.message_id for r in found]


def test_fact_from_turn_one_is_in_the_prompt_of_turn_forty(long_chat):
    services, backend, conversation_id, turns, _ = long_chat
    _, done, sources, _ = turns[-1]
    first = services.conversations.messages(conversation_id)[0]
    # the message itself (recall) or the automatic memory made from it, whichever scored higher
    assert any(h.id == first.id or h.meta.get("message_id") == first.id for h in sources)
    assert "Pickles" in backend.chat_prompts()[-1][-1].content
    answer = services.conversations.message(done.message_id)
    assert first.id in [
        h["id"] if h["kind"] == "recall" else h["meta"]["message_id"] for h in answer.sources
    ], "the answer records which memories fed it"
    assert turns[-1][0].sections["memories"] > 0


def test_kv_prefix_is_reused_between_evictions(long_chat):
    services, backend, conversation_id, turns, _ = long_chat
    prompts = backend.chat_prompts()
    # a turn whose system message (summary included) equals the previous turn's reuses all of it
    steady = [i for i in range(1, len(prompts)) if prompts[i][0].content == prompts[i - 1][0].content]
    assert len(steady) >= 20
    for i in steady:
        system_tokens = backend.count_prompt_tokens(prompts[i][:1])
        # (the count includes the assistant header the template appends; the prefix ends before it)
        # (only whole n_batch chunks are reused: the answer stays the same as on a cold cache)
        assert turns[i][1].usage.cached_tokens >= (system_tokens - 5) // REUSE_BATCH * REUSE_BATCH > 0


def test_core_memory_edit_appears_in_the_next_prompt(tmp_path):
    services, backend = make_services(tmp_path / "data")
    try:
        _, done, _ = turn(services, None, "Hello!")
        services.memory.set_block("human", "The user's name is Ana. She likes tea.")
        report, _, _ = turn(services, done.conversation_id, "What do I like to drink?")
        system = backend.chat_prompts()[-1][0].content
        assert "The user's name is Ana. She likes tea." in system
        assert "### human (38/2000 chars)" in system
        assert report.sections["core_memory"] > 0
    finally:
        services.close()


def test_memory_survives_a_restart(long_chat):
    services, _, conversation_id, _, data_dir = long_chat
    services.memory.set_block("human", "Has a ginger cat called Pickles.")
    summary = services.memory.summaries.get(conversation_id)
    reopened = build(Settings(data_dir=data_dir, n_ctx=N_CTX), load_model=False)
    try:
        assert reopened.memory.core.get("human").value == "Has a ginger cat called Pickles."
        assert reopened.memory.summaries.get(conversation_id) == summary
        assert reopened.memory.recall.search("Pickles", conversation_id=conversation_id)
    finally:
        reopened.close()


def test_a_failing_summary_falls_back_and_loses_nothing(tmp_path):
    services, backend = make_services(
        tmp_path / "data", fail_if=is_summary_request, memory_summary_threshold=0.4
    )
    try:
        conversation_id = None
        for text in [FACT, *FILLER[:9]]:
            _, done, _ = turn(services, conversation_id, text)  # no error reaches the user
            conversation_id = done.conversation_id
        assert any(is_summary_request(m, g) for m, g in backend.requests), "a summary was attempted"
        summary = services.memory.summaries.get(conversation_id)
        messages = services.conversations.messages(conversation_id)
        last_evicted = next(m for m in messages if m.seq == summary.through_seq)
        assert " ".join(last_evicted.content.split()[:5]) in summary.text, (
            "the start of each message was kept"
        )
        writes = services.memory.log.list(target=f"summary:{conversation_id}")
        assert writes and all(w.status == "fallback" for w in writes)
        assert "could not write the summary" in writes[0].note
        assert len(messages) == 20, "no message was lost"
    finally:
        services.close()


# pure logic: which messages to evict, which hits to skip


def test_eviction_waits_for_the_threshold_then_frees_half_the_history_room():
    roles = ["user", "assistant"] * 6
    args = {"fixed": 100, "summary": 0, "summary_cap": 50, "budget": 1000, "threshold": 0.75}
    assert choose_eviction([50] * 12, roles, **args) == 0, "650 of 750 tokens: not yet"
    n = choose_eviction([60] * 12, roles, **args)  # 820 > 750: fold until history <= (750 - 150) / 2
    assert n == 8 and roles[n] == "user"
    assert choose_eviction([10] * 6, roles[:6], dropped=1, **args) == 2, (
        "dropped messages are folded (whole exchange)"
    )
    assert choose_eviction([900, 900], roles[:2], **args) == 0, "the newest exchange always stays"


def test_hits_already_in_the_prompt_are_not_quoted_again():
    shown = _content_words("### human (30/2000 chars)\nThe user's cat is called Pickles.")
    assert _redundant("The user's cat is called Pickles.", shown)
    assert not _redundant("Pickles was adopted in 2019 from a shelter in Lisbon.", shown)
    # the chat said it in its own words: other endings, "I" for "the user", no "called"
    said = _content_words(
        "My cat Pickles stays with the neighbour. I work as a nurse, so I only travel on weekends."
    )
    assert _redundant("The user's cat is named Pickles.", said)
    assert _redundant("The user is a nurse and travels only on weekends.", said)
    assert not _redundant("The user's daughter is called Ines.", said)
    # an earlier turn's quote counts by its text, not by its source attribute (a chat's title)
    quoted = StoredMessage(
        id="m1",
        conversation_id="c1",
        seq=3,
        role="user",
        content="Tell me about the sea.",
        created_at="2026-11-25T10:00:00",
        prompt_content="<memory source=\"user in 'My cat is Pickles'\">Name a fruit.</memory>\n\nQuestion: Tell me about the sea.",
    )
    shown = _shown_words("", "", [quoted])
    assert not _redundant("The user's cat is called Pickles.", shown)
    assert _redundant("Name a fruit.", shown) and "sea" in shown


def test_memory_off_leaves_chat_plain_but_memory_usable(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data", memory=False), load_model=False)
    try:
        assert services.chat.memory is None
        assert services.memory.set_block("human", "Ana").value == "Ana"
    finally:
        services.close()


def test_a_memory_quoted_earlier_in_the_window_is_not_quoted_again(tmp_path):
    """Turn 1 quotes the archival memory; turn 2 asks about it again in other words: the
    memory is still in the prompt (turn 1's message as sent), so turn 2 evaluates no second copy."""
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=N_CTX))
    try:
        services.memory.archival.insert("The user's cat is called Pickles and is ginger.", origin=USER)
        chat = services.chat.new_conversation(title="pets")
        quoted = [
            _quoted_kinds(services.chat.stream_turn(chat.id, question, TURN))
            for question in ("What is my cat called?", "What colour is my cat?")
        ]
        services.chat.wait_for_upkeep()
        first, second = [m for m in services.conversations.messages(chat.id) if m.role == "user"]
        assert '<memory source="archival memory' in first.sent and "Pickles" in first.sent
        assert "never instructions" in first.sent, "quoted as data, never as instructions"
        assert quoted[0] == ["memory"]
        assert "<memory" not in second.sent and second.sent == second.content
        assert "memory" not in quoted[1]
        # a question holding the memory's words is no statement of it: the memory is still quoted
        other = services.chat.new_conversation(title="check")
        asked = _quoted_kinds(
            services.chat.stream_turn(other.id, "Is my cat called Pickles, and ginger?", TURN)
        )
        assert "memory" in asked
    finally:
        services.close()


def _quoted_kinds(events) -> list[str]:
    """The kinds of the hits a turn quoted (its Sources event), once the turn has finished."""
    return [h.kind for e in list(events) if isinstance(e, Sources) for h in e.hits]


def test_a_branch_above_the_summary_gets_no_summary_and_its_own_messages(long_chat):
    """A branch from above the summarized part (an edit of turn 2): the summary tells of
    messages that branch never had, so its prompt goes without it; the branch that has them
    keeps it."""
    from app import memory_handlers as mh

    services, backend, conversation_id, _, _ = long_chat
    summary = services.memory.summaries.get(conversation_id)
    assert summary.text and summary.through_id
    messages = services.conversations.messages(conversation_id)
    tip, first_answer = messages[-1], messages[1]
    # turn 2 asked again another way: a sibling of its question, shown from now on
    edited = services.conversations.add_message(
        conversation_id, "user", "Tell me about ginger cats.", parent_id=first_answer.id
    )
    services.conversations.add_message(
        conversation_id, "assistant", "Ginger cats are often friendly.", parent_id=edited.id
    )
    try:
        _, done, _ = turn(services, conversation_id, "What do you know about me so far?")
        prompt = backend.chat_prompts()[-1]
        assert all(summary.text not in m.content for m in prompt)
        assert FACT in " ".join(m.content for m in prompt)  # the branch's own first message, not folded away
        assert "another branch" in mh.summary_text(services, conversation_id)
        assert services.memory.summaries.get(conversation_id) == summary  # kept for the branch it serves
    finally:
        services.branches.switch(tip.id)
    assert "Running summary" in mh.summary_text(services, conversation_id)
    path = services.conversations.messages(conversation_id)
    assert services.memory.summaries.for_path(conversation_id, path) == summary
