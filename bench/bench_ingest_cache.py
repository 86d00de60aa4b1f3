"""Ingest throughput with and without the vector cache, on a folder with duplicated content.

    python bench/bench_ingest_cache.py            # 60 files
    python bench/bench_ingest_cache.py --quick    # 12 files, to check the script itself

Many real folders repeat themselves: versions of one report, templates, licence headers,
exported wiki pages sharing their navigation. Each file here has the same five sections and
one of its own. Both runs ingest the same folder into a fresh data directory in this one
process, with the embedding model loaded and warmed up first; the line printed is chunks/s
without the cache, with it, and their ratio (the cache's target: >= 2 on this folder).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import Settings, build  # noqa: E402

SHARED = [
    f"## {title}\n\n"
    + " ".join(f"{title} rule {n}: keep the {title.lower()} log current and signed." for n in range(12))
    for title in ("Safety", "Access", "Records", "Equipment", "Escalation")
]


def write_folder(folder: Path, files: int) -> None:
    folder.mkdir(parents=True)
    for i in range(files):
        own = f"## Site {i}\n\n" + " ".join(
            f"Site {i} note {n}: the gauge read {i * 7 + n} cm." for n in range(12)
        )
        (folder / f"site-{i:03d}.md").write_text("# Site procedures\n\n" + "\n\n".join([*SHARED, own]))


def run(folder: Path, data: Path, *, cache: bool) -> tuple[int, float, int]:
    services = build(Settings(data_dir=data), load_model=False)
    try:
        docs = services.documents
        docs.embedder.embed(["warm-up"])  # load the model outside the timing
        if not cache:
            docs.cached = docs.embedder  # every chunk goes to the model, as before the cache
        start = time.perf_counter()
        results = docs.ingest_paths([folder])
        seconds = time.perf_counter() - start
        assert all(r.status == "added" for r in results), [r.message for r in results if r.status != "added"]
        return (
            sum(r.items for r in results),
            seconds,
            getattr(docs.cached, "misses", sum(r.items for r in results)),
        )
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    files = 12 if parser.parse_args().quick else 60
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "folder"
        write_folder(folder, files)
        chunks, plain, _ = run(folder, Path(tmp) / "plain", cache=False)
        _, cached, embedded = run(folder, Path(tmp) / "cached", cache=True)
    print(f"files {files}, chunks {chunks}, embedded with the cache {embedded}")
    print(
        f"ingest without cache {chunks / plain:.1f} chunks/s, with cache {chunks / cached:.1f} chunks/s, "
        f"ratio {plain / cached:.2f} (target >= 2)"
    )


if __name__ == "__main__":
    main()
