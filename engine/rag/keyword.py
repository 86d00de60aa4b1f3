"""Keyword search over chunks: an SQLite FTS5 table written in the same transaction as the
chunks it indexes, so it is never stale, never rebuilt at search time, and an interrupted
ingest leaves both or neither.

FTS5's own tokenisers split ``RLHF:PPO近端`` badly for mixed Chinese/English text, so the
text is tokenised here (``tokenize``) and stored pre-tokenised, space-separated; the table's
tokeniser only splits on white space (every other character category is a token character).
Queries go through the same ``tokenize``. Ranking is FTS5's ``bm25()``.

Words and character pairs live in two tables, each with its own BM25 length normalisation,
and a chunk's score is the sum of both. In one table a chunk of Chinese prose would count
every character pair as a word and look several times longer than an English chunk of the
same size, so BM25 would bury mixed-language chunks; apart, a mixed chunk's few English words
are weighed against the English words of other chunks, its Chinese against their Chinese.

If ``tokenize`` ever changes what it emits, add a migration that calls ``rebuild`` (stored
tokens and query tokens must agree).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..store.db import Database

if TYPE_CHECKING:
    from sqlite_utils import Database as SqliteDatabase
from .chunking import embedding_text

#: words and identifiers / character pairs of no-space scripts
TABLE = "rag_chunks_fts"
PAIRS_TABLE = "rag_chunks_fts_pairs"
TABLES = (TABLE, PAIRS_TABLE)

# every category but separators (Z*) and controls (C*) is a token character: tokens are
# exactly what ``tokenize`` emitted
_FTS_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* N* Co M* P* S*'"

# scripts written without spaces between words: indexed as overlapping character pairs.
# Han (and its extensions/compatibility block), kana, Hangul, Thai, Lao, Khmer, Myanmar
_NOSPACE = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
    "\u1100-\u11ff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f"
)
# combining marks Python's \w does not count as word characters (Devanagari vowel signs...)
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0dff"
_WORD = rf"(?:(?![{_NOSPACE}])[\w{_MARKS}])+"
# a run of no-space script; white space inside it (hard-wrapped lines, "帳 號 建 立") is ignored
_NOSPACE_RUN = rf"[{_NOSPACE}](?:\s*[{_NOSPACE}])*"
# identifiers survive whole ("zx-4471-qk", "parse_args", "v2.3.1", "/etc/skel") and as parts
_TOKEN = re.compile(rf"({_NOSPACE_RUN})|({_WORD}(?:[-_.:/+#@]{_WORD})*)")
_PART = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")
_SPACE = re.compile(r"\s+")
_NOSPACE_CHAR = re.compile(f"[{_NOSPACE}]")

#: most frequent function words of the languages Hearth is most used in: they say nothing
#: about what a question is about, and cost time in long OR queries
STOPWORDS = frozenset(
    """a an and are as at be but by do does for from has have how i if in into is it its me my
    no not of on or our so such that the their then there these they this to was we what when
    where which who why will with you your can should would could about than them he she
    der die das den dem des ein eine einen einem einer eines und oder ist sind wie was wo wer
    mit von zu zum zur im in auf für nicht auch als bei aus nach an ich sie es man kann soll
    le la les un une des du de et ou est sont que qui pour dans sur par avec ne pas
    el los las una unos y o es son para con por del al se lo""".split()
)


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lower-cased words and identifiers (whole and in parts), and character pairs of scripts
    written without spaces: ``RLHF:PPO近端`` gives ``rlhf:ppo``, ``rlhf``, ``ppo``, ``近端``."""
    out: list[str] = []
    for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).lower()):
        nospace, word = match.groups()
        if nospace:
            out.extend(_char_pairs(_SPACE.sub("", nospace)))
            continue
        parts = _PART.findall(word)
        if not parts:
            continue
        if len(parts) > 1 or parts != [word]:
            out.append(word)
        out.extend(p for p in parts if p not in stopwords)
    return out


def split_tokens(tokens: Iterable[str]) -> tuple[list[str], list[str]]:
    """(words, character pairs of no-space scripts): the two tables' shares of ``tokens``."""
    words: list[str] = []
    pairs: list[str] = []
    for token in tokens:
        (pairs if _NOSPACE_CHAR.match(token) else words).append(token)
    return words, pairs


def _char_pairs(run: str) -> list[str]:
    return [run] if len(run) < 2 else [a + b for a, b in zip(run, run[1:])]


def _term(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def match_expression(tokens: Sequence[str], collections: Iterable[str] | None = None) -> str:
    """An FTS5 query: any of ``tokens`` in the text, within ``collections`` (None: all).

    A lone character of a no-space script matches as a prefix (the index holds pairs). A
    word of 5+ letters also matches by its stem-like prefix (all but its last two letters,
    at least 4): "compressing" finds "compression", "Pakete" finds "Paketdateien"; an exact
    match scores both terms, so it still ranks first. (Prefix lengths tuned on the tuning
    splits of bench/data/eval.)"""
    terms = []
    for token in dict.fromkeys(tokens):
        single = len(token) == 1 and _NOSPACE_CHAR.match(token)
        terms.append(_term(token) + (" *" if single else ""))
        if len(token) >= 5 and token.isalpha() and not _NOSPACE_CHAR.search(token):
            terms.append(_term(token[: max(4, len(token) - 2)]) + " *")
    expression = "{body} : (" + " OR ".join(terms) + ")"
    if collections is not None:
        expression += " AND {coll} : (" + " OR ".join(_term(collection_token(c)) for c in collections) + ")"
    return expression


def collection_token(name: str) -> str:
    # hashed: any collection name becomes one plain token
    return "c" + hashlib.sha256(name.encode()).hexdigest()[:20]


def document_token(document_id: str) -> str:
    return "d" + hashlib.sha256(document_id.encode()).hexdigest()[:20]


# writes: always inside the caller's transaction (DocumentStore), beside the chunk rows


def create_tables(db: SqliteDatabase) -> None:
    for table in TABLES:
        db.execute(
            f"create virtual table if not exists {table} using fts5("
            f'body, doc, coll, chunk_id unindexed, tokenize="{_FTS_TOKENIZER}")'
        )


def add_chunks(db: SqliteDatabase, rows: Iterable[dict[str, Any]]) -> None:
    """Index chunk rows (``id``, ``document_id``, ``collection``, ``text``, ``heading``)."""
    out: dict[str, list[tuple[str, str, str, str]]] = {TABLE: [], PAIRS_TABLE: []}
    for r in rows:
        tokens = tokenize(embedding_text(r["text"], r.get("heading") or ""))
        keys = (document_token(r["document_id"]), collection_token(r["collection"]), r["id"])
        for table, part in zip(TABLES, split_tokens(tokens)):
            if part:  # a chunk without CJK has no pairs row (it would skew that table's lengths)
                out[table].append((" ".join(part), *keys))
    for table, values in out.items():
        db.conn.executemany(f"insert into {table}(body, doc, coll, chunk_id) values (?, ?, ?, ?)", values)


def delete_document(db: SqliteDatabase, document_id: str) -> None:
    for table in TABLES:
        db.execute(
            f"delete from {table} where {table} match ?", ["{doc} : " + _term(document_token(document_id))]
        )


def delete_collection(db: SqliteDatabase, name: str) -> None:
    for table in TABLES:
        db.execute(
            f"delete from {table} where {table} match ?", ["{coll} : " + _term(collection_token(name))]
        )


def indexed_chunks(db: SqliteDatabase, collection: str) -> set[str]:
    """Chunk ids of ``collection`` that the keyword index holds (in either table)."""
    found: set[str] = set()
    for table in TABLES:
        cur = db.execute(
            f"select chunk_id from {table} where {table} match ?",
            ["{coll} : " + _term(collection_token(collection))],
        )
        found.update(row[0] for row in cur.fetchall())
    return found


def rebuild(db: SqliteDatabase, *, batch: int = 2000) -> None:
    """Re-index every chunk from ``rag_chunks`` (the migration that creates the tables uses it)."""
    for table in TABLES:
        db.execute(f"delete from {table}")
    last = ""
    while True:
        cur = db.execute(
            "select id, document_id, collection, text, heading from rag_chunks where id > ? order by id limit ?",
            [last, batch],
        )
        rows = [dict(zip(("id", "document_id", "collection", "text", "heading"), r)) for r in cur.fetchall()]
        add_chunks(db, rows)
        if len(rows) < batch:
            return
        last = rows[-1]["id"]


class KeywordIndex:
    """BM25 search over the FTS table; nothing to build, nothing cached."""

    def __init__(self, database: Database, *, max_terms: int = 64):
        self._database = database
        #: a long chat message becomes at most this many distinct search terms
        self.max_terms = max_terms

    def search(
        self, query: str, *, k: int, collections: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        """Best ``k`` (chunk id, BM25 score; higher is better) within ``collections`` (names;
        a dict of name -> anything works too; None: all)."""
        tokens = list(dict.fromkeys(tokenize(query)))[: self.max_terms]
        if not tokens:
            return []
        names = None if collections is None else list(collections)
        if names == []:
            return []
        # each table's best, then summed per chunk: a chunk matching both gets both shares
        selects, params = [], []
        for table, part in zip(TABLES, split_tokens(tokens)):
            if part:
                selects.append(
                    f"select * from (select chunk_id, bm25({table}, 1.0, 0.0, 0.0) as s from {table} "
                    f"where {table} match ? order by s limit ?)"
                )
                params += [match_expression(part, names), max(4 * k, 100)]
        with self._database.read() as db:
            rows = db.execute(
                f"select chunk_id, sum(s) as score from ({' union all '.join(selects)}) "
                "group by chunk_id order by score limit ?",
                [*params, k],
            ).fetchall()
        return [(chunk_id, -score) for chunk_id, score in rows]
