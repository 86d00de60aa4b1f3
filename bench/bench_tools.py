"""Function calling through Hearth's API, scored on the Berkeley Function Calling Leaderboard's
public questions (BFCL, Apache-2.0), which nobody here wrote.

  python bench/bench_tools.py [--per-set 60] [--runs 5] [--bfcl DIR] [--model PATH]

The questions come from the ``bfcl-eval`` wheel on PyPI (downloaded once into
~/.cache/hearth/bfcl with ``pip download``; ``--bfcl`` names an unpacked copy instead). Each
question goes to /v1/chat/completions (a real uvicorn server, the official openai client,
greedy) and is scored like BFCL's AST check, simplified:

- simple (one function, ``tool_choice`` "required"): the call is well formed (JSON arguments
  with every required parameter), names the right function, and every argument it gives is one
  of the answers BFCL allows (numbers compared as numbers, strings without case or outer spaces);
- multiple (2-4 functions, "required"): the same, and the right function chosen among them;
- simple under "auto": how often the model calls at all (it should: each question needs its tool);
- irrelevance ("auto"; no offered function fits the question): how often the model does not call.

First, the speed of grammar-constrained answers (forced calls and JSON answers use a grammar):
tokens/s with ``GrammarFirst`` (the grammar checks the token picked) / with the grammar inside
llama-cpp-python's chain (it filters the whole vocabulary every token), same greedy answers,
runs interleaved; the median of the ratios is printed.

Questions alternate between a tuning split (even positions) and a held-out split (odd); the
tools prompt was only ever looked at against the tuning split. Both are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from api_support import api_client  # noqa: E402

from engine import Settings, build  # noqa: E402

CACHE = Path.home() / ".cache" / "hearth" / "bfcl"
#: BFCL's parameter types, as JSON Schema
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}


def bfcl_data(folder: Path | None) -> Path:
    """The folder with BFCL's question files (``BFCL_v4_*.json``) and ``possible_answer/``."""
    if folder is not None:
        return folder
    data = CACHE / "bfcl_eval" / "data"
    if not data.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--dest", str(CACHE), "bfcl-eval"],
            check=True,
        )
        wheel = max(CACHE.glob("bfcl_eval-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(CACHE, [n for n in z.namelist() if n.startswith("bfcl_eval/data/")])
    return data


def load(data: Path, name: str, limit: int) -> list[dict[str, Any]]:
    questions = [
        json.loads(line) for line in (data / f"BFCL_v4_{name}.json").read_text().splitlines() if line
    ]
    answers_file = data / "possible_answer" / f"BFCL_v4_{name}.json"
    if answers_file.exists():
        answers = {a["id"]: a["ground_truth"] for a in map(json.loads, answers_file.read_text().splitlines())}
        for q in questions:
            q["answer"] = answers[q["id"]]
    return questions[:limit]


def schema(value: Any) -> Any:
    """BFCL's parameter description as JSON Schema (its types renamed, its extras dropped)."""
    if isinstance(value, list):
        return [schema(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: schema(v) for k, v in value.items() if k not in ("optional", "default")}
    kind = value.get("type")
    if kind in _TYPES:
        if _TYPES[kind] is None:
            out.pop("type")
        else:
            out["type"] = _TYPES[kind]
    return out


def tools_of(question: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": f["name"],
                "description": f.get("description", ""),
                "parameters": schema(f["parameters"]),
            },
        }
        for f in question["function"]
    ]


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, str) and isinstance(value, str):
        return value.strip().lower() == allowed.strip().lower()
    if isinstance(allowed, bool) or isinstance(value, bool):
        return value is allowed
    if isinstance(allowed, int | float) and isinstance(value, int | float):
        return abs(value - allowed) < 1e-9
    if isinstance(allowed, list) and isinstance(value, list):
        return len(value) == len(allowed) and all(_same(v, a) for v, a in zip(value, allowed, strict=True))
    if isinstance(allowed, dict) and isinstance(value, dict):
        return set(value) <= set(allowed) and all(any(_same(value[k], a) for a in allowed[k]) for k in value)
    return value == allowed


def score_call(call: Any, question: dict[str, Any]) -> tuple[bool, bool, bool]:
    """(well formed, right function, right arguments) for the first ground-truth call."""
    (truth,) = question["answer"][:1]
    ((name, params),) = truth.items()
    spec = next((f for f in question["function"] if f["name"] == call.function.name), None)
    try:
        arguments = json.loads(call.function.arguments)
    except ValueError:
        return False, False, False
    required = set(spec["parameters"].get("required", [])) if spec else set()
    formed = spec is not None and isinstance(arguments, dict) and required <= set(arguments)
    if not formed or call.function.name != name:
        return formed, False, False
    right = all(k in params and any(_same(v, a) for a in params[k] if a != "") for k, v in arguments.items())
    right = right and all("" in allowed or k in arguments for k, allowed in params.items())
    return formed, True, right


def ask(client, model: str, question: dict[str, Any], choice: str) -> Any:
    messages = question["question"][0]
    reply = client.chat.completions.create(
        model=model,
        messages=messages,
        tools=tools_of(question),
        tool_choice=choice,
        max_tokens=160,
        temperature=0.0,
        extra_body={"repeat_penalty": 1.0},
    )
    return reply.choices[0].message


def splits(questions: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    yield "tuning", questions[0::2]
    yield "held-out", questions[1::2]


def grammar_speed(services, runs: int) -> None:
    """Greedy JSON answers, GrammarFirst / the grammar in llama-cpp-python's chain (tokens/s)."""
    from engine import GenerationConfig
    from engine.backends import llama_cpp as backend_module
    from engine.backends.grammars import json_schema_grammar
    from engine.types import Message

    city = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "population": {"type": "integer"},
            "facts": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "population", "facts"],
    }
    grammar, backend = json_schema_grammar(city), services.models.backend
    messages = [Message(role="user", content="Describe a city as JSON.")]
    config = GenerationConfig(temperature=0.0, max_tokens=120)
    chain_for = backend_module.chain_for

    def rate(first: bool) -> tuple[float, str]:
        backend_module.chain_for = chain_for if first else (lambda *a, **k: None)
        try:
            start, text, produced = time.perf_counter(), "", 0
            for chunk in backend.stream_chat(messages, config, grammar=grammar):
                text += chunk.text
                produced = chunk.usage.completion_tokens if chunk.usage else produced
            return produced / (time.perf_counter() - start), text
        finally:
            backend_module.chain_for = chain_for

    ratios = []
    for _ in range(runs):
        (ours, a), (theirs, b) = rate(True), rate(False)
        assert a == b, "the two ways gave different greedy answers"
        ratios.append(ours / theirs)
    print(
        f"JSON answers, grammar-first / grammar in the chain, tokens/s: median {statistics.median(ratios):.2f} "
        f"(runs {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def run(client, model: str, data: Path, per_set: int) -> None:
    for name in ("simple_python", "multiple"):
        for split, questions in splits(load(data, name, per_set)):
            counts = [0, 0, 0]
            for q in questions:
                message = ask(client, model, q, "required")
                if message.tool_calls:
                    for i, ok in enumerate(score_call(message.tool_calls[0], q)):
                        counts[i] += ok
            n = len(questions)
            print(
                f"{name:14s} {split:8s} n={n:3d}  well formed {counts[0] / n:.3f}  "
                f"right function {counts[1] / n:.3f}  right arguments {counts[2] / n:.3f}"
            )
    for name, wanted in (("simple_python", True), ("irrelevance", False)):
        for split, questions in splits(load(data, name, per_set)):
            good = sum(bool(ask(client, model, q, "auto").tool_calls) == wanted for q in questions)
            what = "called" if wanted else "did not call"
            print(f"{name:14s} {split:8s} n={len(questions):3d}  auto: {what} {good / len(questions):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-set", type=int, default=60, help="questions from each BFCL file")
    parser.add_argument("--bfcl", type=Path, default=None, help="an unpacked bfcl_eval/data folder")
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled model)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs of the grammar speed check")
    args = parser.parse_args()
    data = bfcl_data(args.bfcl)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data", n_ctx=4096, **({"model": args.model} if args.model else {})
        )
        services = build(settings)
        try:
            grammar_speed(services, args.runs)
            with api_client(services) as (client, model):
                print(f"model {model}; BFCL questions from {data}")
                run(client, model, data, args.per_set)
        finally:
            services.close()


if __name__ == "__main__":
    main()
