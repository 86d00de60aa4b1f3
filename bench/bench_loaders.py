"""Loader speed, side by side: Markdown through markdown-it-py (block structure only) against the
plain-text loader on the same bytes, and the new formats per MB. Prints ratios, asserts nothing.

    python bench/bench_loaders.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine.rag.loaders import load_bytes  # noqa: E402


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def markdown_corpus(mb: float) -> bytes:
    section = (
        "Section {i}\n----------\n\nA paragraph about item {i} with some words, a [link](x) and `code`.\n"
        "It wraps onto a second line.\n\n- point one\n- point two\n\n    indented code {i}\n\n"
        "```python\nprint({i})\n```\n\n| a | b |\n|---|---|\n| {i} | x |\n\n"
    )
    out, i = [], 0
    while sum(map(len, out)) < mb * 2**20:
        out.append(section.format(i=i))
        i += 1
    return "".join(out).encode()


def main() -> None:
    for label, data in [("dense notes 1 MB", markdown_corpus(1)), ("one line 1.5 MB", b"word " * 300_000)]:
        md = best_of(3, lambda data=data: load_bytes(data, name="x.md", kind="markdown"))
        txt = best_of(3, lambda data=data: load_bytes(data, name="x.txt", kind="text"))
        print(f"markdown {label}: {md:.2f} s, plain text {txt:.2f} s, ratio {md / txt:.1f}x")
    from formats_support import make_pptx, make_xlsx

    deck = make_pptx([(f"Slide {i}", [f"Bullet {j} of slide {i}" for j in range(8)]) for i in range(300)])
    sheet = make_xlsx(
        {"Data": [["id", "name", "value"]] + [[i, f"name {i}", i * 1.5] for i in range(50_000)]}
    )
    for label, data, kind in [("pptx 300 slides", deck, "pptx"), ("xlsx 50k rows", sheet, "xlsx")]:
        seconds = best_of(2, lambda data=data, kind=kind: load_bytes(data, name=f"x.{kind}", kind=kind))
        print(
            f"{label}: {len(data) / 2**20:.1f} MB in {seconds:.2f} s ({len(data) / 2**20 / seconds:.1f} MB/s)"
        )


if __name__ == "__main__":
    main()
