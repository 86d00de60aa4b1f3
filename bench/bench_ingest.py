"""Ingest of an awkward folder: one big text file and 27 small ones.

    python bench/bench_ingest.py                       # a 20 MB file of distinct Debian documentation
    python bench/bench_ingest.py --big-mb 1            # a short run (the numbers in notes come from these)
    python bench/bench_ingest.py --source repeated     # the big file repeats 500 KB of man pages
    python bench/bench_ingest.py --no-embed-onnx       # ingest through torch, as before the ONNX path
    python bench/bench_ingest.py --embed-precision fp32  # the exact ONNX export instead of int8

The small files are 27 documents of bench/data/eval (Debian man pages in English, German and
mixed Chinese/English). The big one is real public text too: README, NEWS and changelog files
under /usr/share/doc, concatenated until it is big enough (``distinct``), or the English man
pages of the evaluation set repeated (``repeated``, what a folder of exported versions or
logs looks like; the vector cache then embeds each repeated chunk once).

Printed: seconds from the start until every small file was searchable (each is checked with
a keyword search the moment it is committed; target <= 60 s), and whole-ingest chunks/s over
an embed-every-chunk baseline measured in the same process (the plain torch embedder, as
ingest embedded before the vector cache and the ONNX path, on a uniform sample of the same
chunks; target >= 2; stop 17 took the first chunks in file order, the small files' shorter
ones, which flattered the baseline: both are printed); also over Hearth's own embedder (ONNX Runtime once exported, which
the first ingest into a new data directory does in the background; int8 unless
``--embed-precision fp32``) on the same sample, with the precision it ran at. The baseline counts
embedding only, while the ingest also parses and writes, so the ratio is if anything low.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import Settings, build  # noqa: E402
from engine.embeddings import PRECISIONS, TextEmbedder  # noqa: E402
from engine.rag.chunking import embedding_text  # noqa: E402

EVAL = ROOT / "bench" / "data" / "eval"
SMALL_FILES = 27
SMALL_MAX_BYTES = 60_000


def small_files() -> list[Path]:
    docs = sorted(p for p in EVAL.glob("*/docs/*") if p.stat().st_size <= SMALL_MAX_BYTES)
    return docs[:: max(1, len(docs) // SMALL_FILES)][:SMALL_FILES]


def debian_docs() -> list[bytes]:
    """Readable text under /usr/share/doc, in a stable order."""
    out = []
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if not path.is_file() or path.is_symlink() or "copyright" in path.name:
            continue
        try:
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            data.decode("utf-8")
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError):
            continue
        if len(data) > 2000:
            out.append(data)
    return out


def write_big(path: Path, megabytes: float, source: str, one_line: bool = False) -> None:
    target = int(megabytes * 2**20)
    if source == "repeated":
        parts = [p.read_bytes() for p in sorted((EVAL / "en_man" / "docs").iterdir())]
    else:
        parts = debian_docs()
    with path.open("wb") as out:
        written = 0
        while written < target:
            for part in parts:
                if one_line:  # an export or a minified dump: not one line break in 20 MB
                    part = b" ".join(part.split())
                out.write(part + (b" " if one_line else b"\n\n"))
                written += len(part) + 2
                if written >= target:
                    break


def ingest(
    folder: Path, data: Path, small: set[str], sample_size: int, *, onnx: bool, precision: str
) -> dict:
    services = build(Settings(data_dir=data, embed_onnx=onnx, embed_precision=precision), load_model=False)
    docs = services.documents
    try:
        docs.embedder.embed(["warm-up"])  # the model loads outside the timing
        searchable: dict[str, float] = {}
        start = time.perf_counter()

        def progress(done: int, total: int, name: str) -> None:
            if name in small and name not in searchable:
                word = name.rsplit(".", 1)[0].split("/")[-1]
                docs.search(word, k=50, mode="bm25")  # a real search, at the moment it is committed
                searchable[name] = time.perf_counter() - start

        results = docs.ingest_paths([folder], progress=progress)
        seconds = time.perf_counter() - start
        bad = [r.message for r in results if r.status not in ("added", "unchanged")]
        assert not bad, bad
        chunks = sum(r.items for r in results if r.status == "added")
        texts = [embedding_text(r["text"], r["heading"] or "") for r in docs.store.iter_chunks()]
        # the baseline's rate on the chunks this ingest had: a uniform sample of all of them (a
        # model's cost grows with a chunk's length, and the first chunks are the small files')
        sample = random.Random(0).sample(texts, min(sample_size, len(texts)))
        plain = TextEmbedder()  # torch only, as before the ONNX path
        plain.embed(["warm-up"])
        baseline, first = (rate_of(plain, part) for part in (sample, texts[:sample_size]))
        own = rate_of(docs.embedder, sample)  # the same, through the embedder the ingest used
        return {
            "seconds": seconds,
            "chunks": chunks,
            "unique": len(set(texts)),
            "embedded": docs.cached.misses,
            "small_searchable": max(searchable.values()) if searchable else float("nan"),
            "small_seen": len(searchable),
            "baseline": baseline,
            "first": first,
            "own": own,
            "onnx": docs.embedder.onnx_state,
            "variant": docs.embedder.variant(),
        }
    finally:
        services.close()


def rate_of(embedder: TextEmbedder, texts: list[str]) -> float:
    """Chunks/s embedding ``texts`` one after another, in the order given, as before the cache."""
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mb", type=float, default=20.0)
    parser.add_argument("--source", choices=["distinct", "repeated"], default="distinct")
    parser.add_argument("--one-line", action="store_true", help="the big file has no line breaks")
    parser.add_argument("--sample", type=int, default=256, help="chunks embedded for the baseline")
    parser.add_argument("--no-embed-onnx", action="store_true", help="ingest with torch only (as before)")
    parser.add_argument("--embed-precision", choices=PRECISIONS, default=Settings.embed_precision)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "folder"
        folder.mkdir()
        small = set()
        for n, path in enumerate(small_files()):
            name = f"{n:02d}-{path.parent.parent.name}-{path.name}"
            (folder / name).write_bytes(path.read_bytes())
            small.add(f"folder/{name}")
        write_big(folder / "big.txt", args.big_mb, args.source, args.one_line)
        out = ingest(
            folder,
            Path(tmp) / "data",
            small,
            args.sample,
            onnx=not args.no_embed_onnx,
            precision=args.embed_precision,
        )
    rate = out["chunks"] / out["seconds"]
    print(
        f"folder: 1 file of {args.big_mb:g} MB ({args.source}{', one line' if args.one_line else ''}) + {len(small)} small; {out['chunks']} chunks, "
        f"{out['unique']} distinct, {out['embedded']} embedded"
    )
    print(
        f"every small file searchable after {out['small_searchable']:.1f} s "
        f"({out['small_seen']}/{len(small)} seen; target <= 60 s)"
    )
    print(
        f"whole ingest {rate:.1f} chunks/s in {out['seconds']:.0f} s; embed-every-chunk baseline "
        f"{out['baseline']:.1f} chunks/s; ratio {rate / out['baseline']:.2f} (target >= 2)"
    )
    print(
        f"  (the baseline on the first {args.sample} chunks in file order instead, the small files' as "
        f"stop 17 measured it: {out['first']:.1f} chunks/s; ratio {rate / out['first']:.2f})"
    )
    print(
        f"Hearth's embedder (embed_precision {args.embed_precision}; ONNX {out['onnx']}, at the end "
        f"embedding {out['variant']}) on the same sample {out['own']:.1f} chunks/s, "
        f"{out['own'] / out['baseline']:.2f}x torch; whole ingest over it {rate / out['own']:.2f}"
    )


if __name__ == "__main__":
    main()
