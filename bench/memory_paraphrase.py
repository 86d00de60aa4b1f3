"""Paraphrased personal questions: does the fact reach the prompt in a new chat? (bench_memory.py --paraphrase)

Each fact of bench/data/memory_eval.json is told in its own chat (unrelated chats in
between), through ChatService on the real bundled model and embedder, so automatic
memories and message vectors are made by the real after-turn step. Then:

* ``candidates``: every question's scored memory candidates (no threshold), in a new chat;
  the tuning grid and the dense / keyword / fused comparison are computed from these;
* ``prompts``: every question's real prompt in a new chat (ChatService's planning step,
  without generating): the fact counts as reached when its key is in the prompt; an
  unrelated question counts as leaking when any personal memory was quoted into it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine import GenerationConfig, Settings, build
from engine.memory.hybrid import MIN_RELEVANCE, fused, min_relevance, question_kind
from engine.types import Done, TurnStarted

DATA = Path(__file__).resolve().parent / "data" / "memory_eval.json"
TELL = GenerationConfig(temperature=0.0, max_tokens=24)
ASK = GenerationConfig(temperature=0.0, max_tokens=1)
WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
THRESHOLDS = tuple(round(0.1 + 0.01 * i, 2) for i in range(51))


def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def turn(services, conversation_id, text, config) -> tuple[str, Done]:
    user_id, done = "", None
    for event in services.chat.stream_turn(conversation_id, text, config):
        if isinstance(event, TurnStarted):
            user_id = event.user_message_id
        elif isinstance(event, Done):
            done = event
    return user_id, done


def tell(services, data: dict) -> set[str]:
    """Each fact in its own chat, a chat about something else after every third; returns the fact chats.

    Facts already told in this data directory (an earlier run's ``--data-dir``) are not told again.
    """
    told = {c.title: c.id for c in services.conversations.list(limit=10_000)}
    chats, chatter = set(), iter(data["chatter"] * 5)
    for n, fact in enumerate(data["facts"]):
        key = " ".join(fact["say"].split())  # a chat title is its first message, cut at 57 characters
        known = next((cid for t, cid in told.items() if key.startswith(t.removesuffix("..."))), None)
        if known:
            chats.add(known)
            continue
        _, done = turn(services, None, fact["say"], TELL)
        chats.add(done.conversation_id)
        print(f"  told {n + 1}/{len(data['facts'])}", file=sys.stderr, flush=True)
        if n % 3 == 2:
            turn(services, None, next(chatter), TELL)
    return chats


def questions(data: dict, split: str | None = None) -> list[dict]:
    rows = [
        {"fact": f["id"], "key": f["key"], "ask": q, "split": f["split"]}
        for f in data["facts"]
        for q in f["ask"]
    ]
    rows += [{"fact": "", "key": "", "ask": u["ask"], "split": u["split"]} for u in data["unrelated"]]
    return [r for r in rows if split is None or r["split"] == split]


def personal(hit: dict, fact_chats: set[str]) -> bool:
    return hit["kind"] == "memory" or hit["meta"].get("conversation_id") in fact_chats


def candidates(services, rows: list[dict]) -> list[dict]:
    chat = services.chat.new_conversation(title="bench question")
    out = []
    for row in rows:
        hits = services.memory.context.retriever.candidates(row["ask"], chat.id, 0, k=9)
        out.append({**row, "hits": [{"kind": h.kind, "text": h.text, "meta": h.meta} for h in hits]})
    services.conversations.delete(chat.id)
    return out


def rescore(hits: list[dict], weight: float) -> list[tuple[float, dict]]:
    scored = [(fused(h["meta"]["cosine"], h["meta"]["coverage"], weight=weight), h) for h in hits]
    return sorted(scored, key=lambda p: p[0], reverse=True)


def rates(rows: list[dict], fact_chats: set[str], weight: float, thresholds: dict[str, float], k: int = 3):
    """(share of fact questions whose key is among the top k kept, share of unrelated ones quoting a personal memory)."""
    reached, leaked, n_fact, n_unrel = 0, 0, 0, 0
    for row in rows:
        threshold = min_relevance(row["ask"], thresholds)
        kept = [h for s, h in rescore(row["hits"], weight) if s >= threshold][:k]
        if row["fact"]:
            n_fact += 1
            reached += any(row["key"].lower() in h["text"].lower() for h in kept)
        else:
            n_unrel += 1
            leaked += any(personal(h, fact_chats) for h in kept)
    return reached / max(1, n_fact), leaked / max(1, n_unrel)


def ranking_recall(rows: list[dict], order, k: int = 3) -> float:
    """Share of fact questions whose key is in the top k by ``order`` (no threshold)."""
    facts = [r for r in rows if r["fact"]]
    hit = 0
    for row in facts:
        ranked = sorted(row["hits"], key=order, reverse=True)[:k]
        hit += any(row["key"].lower() in h["text"].lower() for h in ranked)
    return hit / max(1, len(facts))


def tune(rows: list[dict], fact_chats: set[str]) -> dict:
    """Per weight, per kind of question: the threshold reaching most facts with no unrelated leak.

    Among thresholds that tie, the middle one (the widest margin both ways); then the weight
    reaching most facts overall.
    """
    best = None
    for weight in WEIGHTS:
        chosen, reach_total = {}, 0
        for kind in ("self", "first_person", "general"):
            part = [r for r in rows if question_kind(r["ask"]) == kind]
            scores = {t: rates(part, fact_chats, weight, dict.fromkeys(MIN_RELEVANCE, t)) for t in THRESHOLDS}
            safe = [t for t, (_, leak) in scores.items() if leak == 0.0] or [THRESHOLDS[-1]]
            top = max(scores[t][0] for t in safe)
            band = [t for t in safe if scores[t][0] == top]
            chosen[kind] = band[len(band) // 2] if kind != "general" or top else band[0]
            reach_total += top * sum(1 for r in part if r["fact"])
        print(
            f"  weight {weight}: thresholds {chosen}, {reach_total:.0f} tuning facts reached", file=sys.stderr
        )
        if best is None or reach_total > best["facts_reached"]:
            best = {"weight": weight, "thresholds": chosen, "facts_reached": reach_total}
    return best or {}


def prompts(services, rows: list[dict], fact_chats: set[str]) -> list[dict]:
    """Each question's real prompt in a new chat (ChatService's own planning, no generation, nothing saved)."""
    chat = services.chat.new_conversation(title="bench question")
    out = []
    for row in rows:
        plan = services.chat.preview(chat.id, row["ask"], ASK)
        prompt = plan.messages[-1].content
        quoted = [{"kind": h.kind, "meta": h.meta} for h in plan.cited if h.kind in ("memory", "recall")]
        out.append(
            {
                **row,
                "reached": bool(row["key"]) and row["key"].lower() in prompt.lower(),
                "leaked": any(personal(h, fact_chats) for h in quoted),
            }
        )
    services.conversations.delete(chat.id)
    return out


def run(root: Path, threads: int | None, *, do_tune: bool, data_dir: Path | None = None) -> dict:
    data = load()
    services = build(Settings(data_dir=data_dir or root / "paraphrase", n_ctx=2048, n_threads=threads))
    try:
        fact_chats = tell(services, data)
        auto = sum(1 for e in services.memory.archival.list(limit=1000) if e.auto)
        scored = candidates(services, questions(data))
        result: dict = {"facts": len(data["facts"]), "auto_memories": auto}
        tune_rows = [r for r in scored if r["split"] == "tune"]
        if do_tune:
            result["tuned"] = tune(tune_rows, fact_chats)
        for split in ("tune", "heldout"):
            rows = [r for r in scored if r["split"] == split]
            result[f"recall@3_{split}"] = {
                "dense": ranking_recall(
                    rows, lambda h: h["meta"]["cosine"] if h["meta"]["cosine"] is not None else -1
                ),
                "keyword": ranking_recall(rows, lambda h: h["meta"]["coverage"]),
                "fused": ranking_recall(rows, lambda h: fused(h["meta"]["cosine"], h["meta"]["coverage"])),
            }
        for split in ("tune", "heldout"):
            rows = prompts(services, questions(data, split), fact_chats)
            facts = [r for r in rows if r["fact"]]
            unrelated = [r for r in rows if not r["fact"]]
            result[f"turns_{split}"] = {
                "reached": sum(r["reached"] for r in facts) / max(1, len(facts)),
                "questions": len(facts),
                "unrelated_leak_rate": sum(r["leaked"] for r in unrelated) / max(1, len(unrelated)),
                "unrelated": len(unrelated),
                "missed": [r["ask"] for r in facts if not r["reached"]],
                "leaked": [r["ask"] for r in unrelated if r["leaked"]],
            }
    finally:
        services.close()
    return result


def report(result: dict) -> None:
    print(
        f"paraphrased personal questions ({result['facts']} facts; {result['auto_memories']} automatic memories kept)"
    )
    for split in ("tune", "heldout"):
        row = result[f"turns_{split}"]
        print(
            f"  {split:<8} fact reached the prompt: {row['reached']:.3f} of {row['questions']} questions; "
            f"unrelated questions quoting a personal memory: {row['unrelated_leak_rate']:.3f} of {row['unrelated']}"
        )
        if row["missed"]:
            print(f"           missed: {row['missed']}")
        if row["leaked"]:
            print(f"           leaked: {row['leaked']}")
    print("  recall@3 of the candidates, no threshold (dense / keyword / fused):")
    for split in ("tune", "heldout"):
        r = result[f"recall@3_{split}"]
        print(f"  {split:<8} {r['dense']:.3f} / {r['keyword']:.3f} / {r['fused']:.3f}")
    if "tuned" in result:
        print(f"  tuned on the tuning split: {result['tuned']}")
