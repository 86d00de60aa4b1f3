"""Branches from the command line: every command is a fresh process over the same SQLite file."""

from __future__ import annotations

import json

from test_cli import hearth


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

    listing = hearth("branches", cid, data_dir=data).stdout
    assert "3/3" in listing
    hearth("switch", first["message_id"], data_dir=data)
    points = json.loads(hearth("branches", cid, "--json", data_dir=data).stdout)
    assert points[1]["message_id"] == first["message_id"] and points[1]["position"] == 1

    exported = tmp_path / "c.json"
    hearth("export", cid, "--format", "json", "-o", str(exported), data_dir=data)
    new_id = hearth("import", str(exported), data_dir=data).stdout.strip()
    again = json.loads(hearth("export", new_id, "--format", "json", data_dir=data).stdout)
    assert again == json.loads(exported.read_text())
    md = hearth("export", new_id, "--format", "md", data_dir=data).stdout
    assert "Name a bird." in md and first["message"].strip()[:8] in md

    broken = tmp_path / "broken.json"
    broken.write_text(exported.read_text()[:-20])
    before = hearth("conversations", data_dir=data).stdout
    refused = hearth("import", str(broken), data_dir=data, check=False)
    assert refused.returncode == 2 and "cannot be imported" in refused.stderr
    assert hearth("conversations", data_dir=data).stdout == before

    forked = hearth("fork", first["message_id"], "--title", "forked", data_dir=data).stdout.strip()
    copy = json.loads(hearth("export", forked, "--format", "json", data_dir=data).stdout)
    assert [m["content"] for m in copy["messages"]] == ["Name a bird.", first["message"]]
