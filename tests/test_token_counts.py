"""Token counts are remembered: a turn does not tokenize the whole window again to plan its prompt."""

from __future__ import annotations

from conftest import run_turn

from engine import GenerationConfig
from engine.backends.token_counts import TokenCounts

SHORT = GenerationConfig(temperature=0.0, max_tokens=4)


def test_each_text_is_counted_once_while_it_stays_among_the_last_used():
    asked: list[str] = []
    counts = TokenCounts(lambda t: asked.append(t) or len(t.split()), size=2)
    assert counts("a b c") == 3 and counts("a b c") == 3 and asked == ["a b c"]
    assert counts("") == 0 and asked == ["a b c"]  # nothing to count, nothing asked
    counts("d e")
    counts("a b c")  # used again: now the most recent
    counts("f")  # evicts "d e", the least recently used
    counts("a b c")
    counts("d e")
    assert asked == ["a b c", "d e", "f", "d e"]


def test_a_later_turn_counts_only_what_is_new(services):
    done, _ = run_turn(services, "My cat Pickles likes the windowsill.", SHORT)
    chat = done.conversation_id
    for i in range(6):
        services.conversations.add_message(chat, "user", f"Old question number {i} about the garden?")
        services.conversations.add_message(chat, "assistant", f"Old answer number {i}: water it weekly.")
    previous, _ = run_turn(services, "And the roses?", SHORT, conversation_id=chat)  # counts the window
    with services.models.lease() as backend:
        text = "Old answer number 3: water it weekly."
        assert backend.count_tokens(text) == len(backend._llm.tokenize(text.encode(), add_bos=False))
        counts = backend._tokens.count
        counted: list[str] = []
        real = counts._make
        counts._make = lambda t: counted.append(t) or real(t)
    question = "What did we say about tulips?"
    done, _ = run_turn(services, question, SHORT, conversation_id=chat)
    assert done.finish_reason in ("stop", "length")
    # the new question and the answer before it; never the 14 messages already counted
    assert question in counted and set(counted) <= {question, previous.text}, counted
