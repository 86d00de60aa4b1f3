"""The keyword side of retrieval on real parts: the tokeniser, the FTS5 index written in the
chunks' transaction (and its consistency after a kill -9 mid-ingest), the migration that
builds it from existing chunks, mixed Chinese/English retrieval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_rag_support import open_services

from engine.rag.keyword import TABLES, match_expression, tokenize

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def docs_services(tmp_path_factory):
    yield from open_services(tmp_path_factory)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a Latin word touching CJK stays a word; CJK becomes overlapping pairs
        ("RLHF:PPO近端策略", ["rlhf:ppo", "rlhf", "ppo", "近端", "端策", "策略"]),
        # identifiers whole and in parts; stop words dropped
        ("the zx-4471-qk of parse_args", ["zx-4471-qk", "zx", "4471", "qk", "parse_args", "parse", "args"]),
        # a space or a line break between CJK characters does not split the run
        ("帳 號 建\n立", ["帳號", "號建", "建立"]),
        # full-width forms fold to ASCII
        ("ＡＢＣ１２３", ["abc123"]),
        # combining marks stay inside their word (Devanagari)
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("Löschen Sie das Paket", ["löschen", "paket"]),
        ("猫", ["猫"]),
    ],
)
def test_tokenize(text, expected):
    assert tokenize(text) == expected
    assert "rl" not in tokenize("RLHF:PPO近端") and "f:" not in tokenize("RLHF:PPO近端")


def test_match_expression_quotes_tokens_and_prefixes_a_lone_cjk_character():
    expression = match_expression(['say "hi"', "猫"], ["library"])
    assert '"say ""hi"""' in expression and '"猫" *' in expression and "{coll}" in expression


def _fts_ids(services, collection: str | None = None) -> set[str]:
    with services.database.read() as db:
        ids = {r[0] for table in TABLES for r in db.execute(f"select chunk_id from {table}")}
    if collection is None:
        return ids
    return ids & {i for i, _, _ in services.documents.all_chunks(collection)}


def _sql_ids(services, collection: str) -> set[str]:
    return {i for i, _, _ in services.documents.all_chunks(collection)}


MIXED_NOTES = {
    "rl-notes.md": "# 强化学习笔记\n\n今天复习了 RLHF:PPO近端策略优化，奖励模型用 Bradley-Terry 损失训练，"
    "KL 惩罚系数设为 0.02，防止策略偏离参考模型太远。\n",
    "db-notes.md": "# 数据库笔记\n\nSQLite 的 WAL 模式允许读写并发；检查点由 wal_autocheckpoint 控制，"
    "默认每 1000 页触发一次。\n",
    "garden.txt": "Planted tomatoes and basil in the raised bed; watering every second morning.\n",
    "travel.md": "# 旅行计划\n\n十月去京都看红叶，住在岚山附近的民宿，预算大约八万日元。\n",
}


def test_mixed_language_notes_are_found_by_a_chinese_question_and_by_an_english_identifier(
    docs_services, tmp_path
):
    s = docs_services
    for name, text in MIXED_NOTES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    paths = [tmp_path / name for name in MIXED_NOTES]
    assert all(r.status == "added" for r in s.documents.ingest_paths(paths, collection="notes"))
    by_chinese = s.documents.search("近端策略优化的惩罚系数是多少？", k=2, collections=["notes"])
    assert by_chinese[0].source == "rl-notes.md", [(h.source, h.score) for h in by_chinese]
    by_identifier = s.documents.search("wal_autocheckpoint", k=2, collections=["notes"])
    assert by_identifier[0].source == "db-notes.md"
    keyword_only = s.documents.search("RLHF", k=1, collections=["notes"], mode="bm25")
    assert keyword_only[0].source == "rl-notes.md" and keyword_only[0].meta["bm25_score"] > 0
    assert s.documents.search("红叶 民宿", k=1, collections=["notes"], mode="bm25")[0].source == "travel.md"
    assert _fts_ids(s, "notes") == _sql_ids(s, "notes")


def test_keyword_index_follows_replace_and_delete_in_place(docs_services, tmp_path):
    s = docs_services
    path = tmp_path / "inventory.txt"
    path.write_text("Bin QX-17 holds the brass hinges.", encoding="utf-8")
    first = s.documents.ingest_paths([path], collection="inplace")[0]
    assert s.documents.keywords.search("QX-17 brass hinges", k=3, collections=["inplace"])
    path.write_text("Bin QX-18 holds the copper rivets.", encoding="utf-8")
    second = s.documents.ingest_paths([path], collection="inplace")[0]
    assert second.status == "replaced"
    assert s.documents.keywords.search("brass hinges", k=3, collections=["inplace"]) == []
    assert s.documents.keywords.search("copper rivets", k=3, collections=["inplace"])
    s.documents.delete(second.id)
    assert s.documents.keywords.search("copper rivets", k=3, collections=["inplace"]) == []
    assert first.id != second.id and _fts_ids(s, "inplace") == set()


# A child process ingests one file and is killed -9 inside the SQLite transaction, after the
# chunk rows and their keyword rows were written and before the commit.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from engine import Settings, build
    from engine.rag import keyword

    data, doc, flag = (Path(a) for a in sys.argv[1:4])
    services = build(Settings(data_dir=data), load_model=False)
    real = keyword.add_chunks

    def add_then_hang(db, rows):
        real(db, rows)
        flag.write_text("in transaction")
        time.sleep(600)

    keyword.add_chunks = add_then_hang
    services.documents.ingest_paths([doc], collection="killed")
    """
)


def test_kill_between_chunk_write_and_commit_leaves_neither_chunks_nor_keyword_rows(tmp_path):
    from engine import Settings, build

    data, doc, flag = tmp_path / "data", tmp_path / "ledger.txt", tmp_path / "flag"
    doc.write_text("The harbour ledger lists cargo code HX-5521 for the October crossing.", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(data), str(doc), str(flag)], env=env)
    try:
        deadline = time.monotonic() + 300
        while not flag.exists():
            assert child.poll() is None, "the ingest process ended before reaching the commit"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    services = build(Settings(data_dir=data), load_model=False)
    try:
        with services.database.read() as db:
            n_chunks = db.execute("select count(*) from rag_chunks").fetchone()[0]
            n_keyword = sum(db.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES)
        assert (n_chunks, n_keyword) == (0, 0)
        assert services.documents.search("HX-5521", k=3, mode="bm25") == []
        # and the same ingest, uninterrupted, writes both
        assert services.documents.ingest_paths([doc], collection="killed")[0].status == "added"
        assert _fts_ids(services) == _sql_ids(services, "killed") != set()
        assert services.documents.search("HX-5521", k=1, mode="bm25")[0].source == "ledger.txt"
    finally:
        services.close()


def test_migration_builds_the_keyword_index_from_existing_chunks(tmp_path):
    import sqlite_utils

    from engine.rag.migrations import rag
    from engine.store import Database, core_migrations

    db = sqlite_utils.Database(tmp_path / "old.db")
    core_migrations.apply(db)
    rag.apply(db, stop_before="0003_keyword_fts5")  # a database from before the FTS index
    assert not set(TABLES) & set(db.table_names())
    db["rag_documents"].insert(
        {
            "id": "d1",
            "collection": "library",
            "source": "s",
            "name": "n.txt",
            "kind": "text",
            "content_hash": "h",
            "text": "x",
        }
    )
    db["rag_chunks"].insert_all(
        [
            {
                "id": f"d1-{i:05d}",
                "document_id": "d1",
                "collection": "library",
                "seq": i,
                "text": text,
                "heading": "",
                "start": 0,
                "end": 1,
            }
            for i, text in enumerate(["Kiln ZR-88 fires at noon.", "窑炉温度很高"])
        ]
    )
    db.conn.close()
    database = Database(tmp_path / "old.db", [core_migrations, rag])
    try:
        from engine.rag.keyword import KeywordIndex

        index = KeywordIndex(database)
        assert [i for i, _ in index.search("ZR-88", k=3)] == ["d1-00000"]
        assert [i for i, _ in index.search("窑炉", k=3, collections=["library"])] == ["d1-00001"]
    finally:
        database.close()
