"""Branch operations against conversation size: switch, branch points, export, import.

Builds conversations of N turns where every answer has 3 siblings (real SQLite file, no
model), and prints each operation's time and its ratio to the smallest size, measured side by
side. Run: python bench/bench_branches.py [--sizes 50,200,800]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.factory import migration_sets  # noqa: E402
from engine.store import Branches, ConversationStore, Database  # noqa: E402


def build(store: ConversationStore, turns: int) -> tuple[str, list[str]]:
    conv = store.create(title=f"{turns} turns")
    firsts = []
    for t in range(turns):
        store.add_message(conv.id, "user", f"question {t} " + "word " * 40)
        answers = []
        for k in range(3):
            if answers:
                store.deactivate([answers[-1]])
            answers.append(store.add_message(conv.id, "assistant", f"answer {t}.{k} " + "text " * 80).id)
        firsts.append(answers[0])
    return conv.id, firsts


def timed(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="50,200,800")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(Path(tmp) / "bench.db", migration_sets())
        store = ConversationStore(database)
        branches = Branches(database, store)
        for turns in sizes:
            cid, firsts = build(store, turns)
            middle = firsts[len(firsts) // 2]
            exported = json.dumps(branches.export_json(cid))
            rows.append(
                {
                    "turns": turns,
                    "messages": turns * 4,
                    "switch": timed(partial(branches.switch, middle)),
                    "points": timed(partial(branches.branch_points, cid)),
                    "export": timed(partial(branches.export_json, cid)),
                    "import": timed(partial(branches.import_json, exported), repeat=2),
                }
            )
        database.close()
    base = rows[0]
    print(
        f"{'turns':>6} {'msgs':>6}" + "".join(f" {k:>18}" for k in ("switch", "points", "export", "import"))
    )
    for row in rows:
        cells = "".join(
            f" {row[k] * 1000:8.1f} ms x{row[k] / base[k]:5.1f}"
            for k in ("switch", "points", "export", "import")
        )
        print(f"{row['turns']:>6} {row['messages']:>6}{cells}")


if __name__ == "__main__":
    main()
