"""`python run.py memory ...` through cli.main, on a real data directory."""

from __future__ import annotations

import json

import pytest

from cli import main


@pytest.fixture
def run(tmp_path, capsys):
    def call(*args: str) -> tuple[int, str, str]:
        code = main(["--data-dir", str(tmp_path / "data"), "memory", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_set_then_show(run):
    code, out, _ = run("set", "human", "The user's name is Ana.")
    assert code == 0 and "human: 23/2000 chars" in out
    code, out, _ = run("show")
    assert "human (23/2000 chars, global)" in out and "The user's name is Ana." in out
    code, out, _ = run("show", "--json")
    data = json.loads(out)
    human = next(b for b in data["blocks"] if b["label"] == "human")
    assert (human["value"], human["limit"], human["updated_by"]) == (
        "The user's name is Ana.",
        2000,
        "command line",
    )


def test_set_over_the_limit_fails_clearly_and_keeps_the_old_text(run):
    run("set", "human", "short")
    code, out, err = run("set", "human", "x" * 2100)
    assert code == 2
    assert "Memory problem" in err and "at most 2000 characters" in err and "100 too many" in err
    assert json.loads(run("show", "--json")[1])["blocks"][1]["value"] == "short"


def test_set_creates_a_new_block_with_a_limit(run):
    code, out, _ = run("set", "projects", "Hearth memory", "--limit", "300")
    assert code == 0 and "projects: 13/300 chars" in out
    labels = [b["label"] for b in json.loads(run("show", "--json")[1])["blocks"]]
    assert labels == ["persona", "human", "projects"]
    assert run("set", "Bad Name", "x")[0] == 2


def test_add_then_search(run):
    code, out, _ = run("add", "Ana's cat is called Pickles.", "--json")
    entry = json.loads(out)
    assert code == 0 and entry["origin"] == "cli" and entry["indexed"]
    code, out, _ = run("search", "what is the name of my pet?", "--json")
    hits = json.loads(out)
    assert hits[0]["id"] == entry["id"] and hits[0]["kind"] == "memory"
    code, out, _ = run("delete", entry["id"])
    assert code == 0
    assert json.loads(run("search", "Pickles", "--json")[1]) == []


def test_log_shows_where_writes_came_from(run):
    run("set", "human", "Ana")
    code, out, _ = run("log", "--json")
    [write] = json.loads(out)
    assert (write["action"], write["origin"], write["status"]) == ("block_set", "cli", "applied")


def test_empty_database_and_bad_dates(run):
    code, out, _ = run("search", "anything")
    assert code == 0 and "Nothing found." in out
    code, _, err = run("search", "x", "--from", "yesterday")
    assert code == 2 and "2025-01-31" in err
    assert "No suggestions" in run("pending")[1]


def test_auto_switch_edit_and_reindex(run):
    assert run("auto")[1].strip() == "automatic memories: on"
    assert run("auto", "off")[1].strip() == "automatic memories: off"
    assert run("auto")[1].strip() == "automatic memories: off", "kept in the data directory"
    entry = json.loads(run("add", "Ana's cat is called Pickles.", "--json")[1])
    assert run("edit", entry["id"], "Ana's cat is called Miso.")[0] == 0
    code, out, _ = run("reindex")
    assert code == 0 and "re-embedded 1 archival memories and 0 messages" in out
    hits = json.loads(run("search", "what is the name of my pet?", "--json")[1])
    assert hits[0]["text"] == "Ana's cat is called Miso."
