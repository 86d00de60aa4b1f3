"""BM25 keyword search over chunks, with bm25s: the only module importing it.

One index per collection, built from SQLite (the source of truth) on the first search
after the collection changed, and saved under the data directory so a restart does
not rebuild it. A collection's ``generation`` (bumped with every change, in the same
transaction) says whether a built index is current. bm25s indexes are static, so a
change rebuilds that collection's index; collections keep the cost local.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

#: (chunk id, indexed text) rows of one collection
RowSource = Callable[[str], Iterable[tuple[str, str]]]

# identifiers survive whole ("zx-4471-qk", "parse_args", "v2.3.1") and also as their parts
_TOKEN = re.compile(r"\w+(?:[-_.:/]\w+)*")
_PART = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def tokenize(text: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased words and identifiers; CJK runs as character bigrams (no spaces to split on)."""
    out: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group()
        if _CJK.search(token):
            out.extend(_cjk_grams(token))
            continue
        parts = _PART.findall(token)
        if len(parts) > 1:
            out.append(token)
        out.extend(p for p in parts if p not in stopwords)
    return out


def _cjk_grams(token: str) -> list[str]:
    chars = [c for c in token if not c.isspace()]
    return chars if len(chars) < 2 else [a + b for a, b in zip(chars, chars[1:])]


@dataclass
class _Shard:
    generation: int
    ids: list[str]
    retriever: object | None  # bm25s.BM25, None when the collection is empty


class KeywordIndex:
    def __init__(self, root: Path, rows: RowSource):
        self.root = Path(root)
        self._rows = rows
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()
        self._stopwords: frozenset[str] | None = None

    def search(self, query: str, *, k: int, collections: dict[str, int]) -> list[tuple[str, float]]:
        """Best ``k`` (chunk id, BM25 score) over ``collections`` (name -> current generation)."""
        tokens = tokenize(query, self.stopwords())
        if not tokens:
            return []
        hits: list[tuple[str, float]] = []
        for name, generation in collections.items():
            hits.extend(self._search_shard(self._shard(name, generation), tokens, k))
        hits.sort(key=lambda h: -h[1])
        return hits[:k]

    def stopwords(self) -> frozenset[str]:
        if self._stopwords is None:
            from bm25s.stopwords import STOPWORDS_EN

            self._stopwords = frozenset(STOPWORDS_EN)
        return self._stopwords

    def drop(self, collection: str) -> None:
        with self._lock:
            self._shards.pop(collection, None)
            shutil.rmtree(self._dir(collection), ignore_errors=True)

    def _search_shard(self, shard: _Shard, tokens: list[str], k: int) -> list[tuple[str, float]]:
        if shard.retriever is None:
            return []
        import numpy as np

        vocab = shard.retriever.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return []
        scores = shard.retriever.get_scores(known)
        n = min(k, int(np.count_nonzero(scores > 0)))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        return [(shard.ids[i], float(scores[i])) for i in top]

    def _shard(self, collection: str, generation: int) -> _Shard:
        with self._lock:
            shard = self._shards.get(collection)
            if shard is None or shard.generation != generation:
                shard = self._load(collection, generation) or self._build(collection, generation)
                self._shards[collection] = shard
            return shard

    def _dir(self, collection: str) -> Path:
        # named by a hash: a collection name never becomes a path
        return self.root / hashlib.sha256(collection.encode()).hexdigest()[:24]

    def _load(self, collection: str, generation: int) -> _Shard | None:
        folder = self._dir(collection) / f"gen-{generation}"
        if not (folder / "ids.json").exists():
            return None
        try:
            import bm25s

            ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
            retriever = bm25s.BM25.load(str(folder), show_progress=False) if ids else None
        except (OSError, ValueError, KeyError):  # damaged files: rebuild from SQLite
            return None
        return _Shard(generation, ids, retriever)

    def _build(self, collection: str, generation: int) -> _Shard:
        stop = self.stopwords()
        ids: list[str] = []
        corpus: list[list[str]] = []
        for chunk_id, text in self._rows(collection):
            ids.append(chunk_id)
            corpus.append(tokenize(text, stop))
        retriever = None
        if ids:
            import bm25s

            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
        shard = _Shard(generation, ids, retriever)
        self._save(collection, shard)
        return shard

    def _save(self, collection: str, shard: _Shard) -> None:
        """Write to a temporary folder, then rename: a crash never leaves a half index."""
        base = self._dir(collection)
        final = base / f"gen-{shard.generation}"
        tmp = base / f".tmp-{shard.generation}-{os.getpid()}-{threading.get_ident()}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if shard.retriever is not None:
                shard.retriever.save(str(tmp), show_progress=False)
            (tmp / "ids.json").write_text(json.dumps(shard.ids), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in base.iterdir():
                if old != final and old.name.startswith("gen-"):
                    shutil.rmtree(old, ignore_errors=True)
        except OSError:
            # the saved copy only spares a rebuild after a restart; the index in memory serves
            shutil.rmtree(tmp, ignore_errors=True)
