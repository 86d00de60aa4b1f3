"""Grammar-constrained answers on the bundled model (engine/backends/grammar_first.py): the grammar
checks the token the chain picked and filters the whole vocabulary only when it refuses it; the
answers are the same as with the grammar inside llama-cpp-python's chain."""

from __future__ import annotations

import collections
import json

import pytest

from engine import GenerationConfig, Settings
from engine.backends.grammar_first import GrammarFirst
from engine.backends.grammars import json_object_grammar, json_schema_grammar
from engine.types import Message

CITY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "population": {"type": "integer"},
        "facts": {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": 3},
    },
    "required": ["name", "population", "facts"],
}
CASES = [
    ("Describe a city as JSON.", json_schema_grammar(CITY)),
    # the model would start a story in prose: the grammar refuses its first picks
    ("Tell me a story about a dragon.", json_object_grammar()),
    ("List three fruits.", json_schema_grammar({"type": "array", "items": {"type": "string"}})),
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from engine.backends.llama_cpp import LlamaCppBackend

    b = LlamaCppBackend(Settings(data_dir=tmp_path_factory.mktemp("grammar"), n_ctx=1024, kv_snapshots=False))
    yield b
    b.close()


@pytest.fixture
def in_chain(monkeypatch):
    """Switches to llama-cpp-python's own chain, with the grammar inside it (the old way)."""
    from engine.backends import llama_cpp as backend_module

    return lambda: monkeypatch.setattr(backend_module, "chain_for", lambda *a, **k: None)


def _answer(backend, prompt: str, grammar: str, **values) -> str:
    config = GenerationConfig(max_tokens=values.pop("max_tokens", 80), **values)
    messages = [Message(role="user", content=prompt)]
    return "".join(chunk.text for chunk in backend.stream_chat(messages, config, grammar=grammar))


@pytest.mark.parametrize("values", [{"temperature": 0.0}, {"temperature": 0.0, "repeat_penalty": 1.0}])
def test_greedy_answers_are_the_ones_the_grammar_in_the_chain_gives(backend, in_chain, monkeypatch, values):
    checks = collections.Counter()
    pick = GrammarFirst._pick

    def counted(self, logits, *, constrained):
        checks["filtered" if constrained else "picked"] += 1
        return pick(self, logits, constrained=constrained)

    monkeypatch.setattr(GrammarFirst, "_pick", counted)
    first = [_answer(backend, prompt, grammar, **values) for prompt, grammar in CASES]
    # most tokens were only checked: the whole vocabulary went through the grammar for a few
    assert checks["picked"] >= 40 and checks["filtered"] < checks["picked"] / 3, checks
    in_chain()
    assert [_answer(backend, prompt, grammar, **values) for prompt, grammar in CASES] == first
    assert json.loads(first[0])["name"]


def test_sampled_answers_follow_the_constrained_distribution(backend, in_chain):
    # one token among three the grammar allows, drawn at temperature 1 with no truncation: the
    # free draw the grammar refuses is drawn again among the allowed, so each word keeps p / allowed
    grammar = 'root ::= "yes" | "no" | "maybe"'
    values = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "max_tokens": 4}
    prompt = "Will it rain tomorrow? Answer yes, no or maybe."
    seeds = range(1, 201)
    ours = collections.Counter(_answer(backend, prompt, grammar, seed=s, **values) for s in seeds)
    in_chain()
    theirs = collections.Counter(_answer(backend, prompt, grammar, seed=s, **values) for s in seeds)
    assert set(ours) <= {"yes", "no", "maybe"} and set(theirs) <= {"yes", "no", "maybe"}
    assert len(theirs) >= 2, theirs  # a real choice, not one word that always wins
    for word in ("yes", "no", "maybe"):
        assert abs(ours[word] - theirs[word]) / len(seeds) < 0.12, (ours, theirs)


def test_sampled_json_answers_always_parse(backend):
    for seed in range(1, 9):
        text = _answer(
            backend, "Describe a city as JSON.", json_schema_grammar(CITY), temperature=0.9, seed=seed
        )
        value = json.loads(text)
        assert isinstance(value["population"], int), text
