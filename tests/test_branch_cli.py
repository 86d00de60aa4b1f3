"""Branches from the command line: every command is a fresh process over the same SQLite file."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
from test_cli import hearth


@pytest.mark.timeout(1500)  # nine commands, each a fresh process on a shared machine
def test_compare_branches_switch_fork_export_import(tmp_path):
    data = tmp_path / "data"
    first = json.loads(hearth("chat", "Name a bird.", "--json", "--max-tokens", "6", data_dir=data).stdout)
    cid = first["conversation_id"]
    compared = json.loads(
        hearth(
            "compare",
            cid,
            "--with",
            "current",
            "--with",
            "Creative",
            "--seeds",
            "3,4",
            "--max-tokens",
            "6",
            "--json",
            data_dir=data,
        ).stdout
    )
    assert [c["seed"] for c in compared] == [3, 4] and all(c["message_id"] for c in compared)

    hearth("switch", first["message_id"], data_dir=data)
    points = json.loads(hearth("branches", cid, "--json", data_dir=data).stdout)
    assert points[1]["message_id"] == first["message_id"] and points[1]["position"] == 1
    assert points[1]["total"] == 3

    exported = tmp_path / "c.json"
    hearth("export", cid, "--format", "json", "-o", str(exported), data_dir=data)
    new_id = hearth("import", str(exported), data_dir=data).stdout.strip()
    again = json.loads(hearth("export", new_id, "--format", "json", data_dir=data).stdout)
    assert again == json.loads(exported.read_text())

    broken = tmp_path / "broken.json"
    broken.write_text(exported.read_text()[:-20])
    before = _rows(data)
    refused = hearth("import", str(broken), data_dir=data, check=False)
    assert refused.returncode == 2 and "cannot be imported" in refused.stderr
    assert _rows(data) == before

    forked = hearth("fork", first["message_id"], "--title", "forked", data_dir=data).stdout.strip()
    with closing(sqlite3.connect(data / "hearth.db")) as db:
        copied = db.execute("select content from messages where conversation_id = ? order by seq", [forked])
        assert [r[0] for r in copied] == ["Name a bird.", first["message"]]


def _rows(data) -> tuple[int, int]:
    with closing(sqlite3.connect(data / "hearth.db")) as db:
        return db.execute(
            "select (select count(*) from conversations), (select count(*) from messages)"
        ).fetchone()
