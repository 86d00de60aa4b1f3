"""The ingest / search / documents / reindex commands, run in-process through cli.main."""

from __future__ import annotations

import json

import pytest
from test_rag_support import FACTS, write_corpus

import cli


def run(capsys, data_dir, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--data-dir", str(data_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def png_bytes() -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli") / "data"


def test_ingest_a_folder_then_search_as_json(capsys, data_dir, tmp_path):
    folder = tmp_path / "docs"
    write_corpus(folder)
    (folder / "pictures").mkdir()
    (folder / "pictures" / "red.png").write_bytes(png_bytes())
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main", encoding="utf-8")

    code, out, _ = run(capsys, data_dir, "ingest", str(folder), "--collection", "cli", "--json")
    results = json.loads(out)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in results}
    assert "HEAD" not in by_name  # hidden folders are skipped
    docs = {k: v for k, v in by_name.items() if k != "red.png"}
    assert len(docs) == 10 and all(r["status"] == "added" for r in docs.values()), docs
    # the image went to the Images feature, which answers for it (here: CLIP weights are not installed)
    assert "red.png" in by_name and "images need the Images feature" not in by_name["red.png"]["message"]
    assert code == (1 if by_name["red.png"]["status"] == "error" else 0)

    code, out, _ = run(capsys, data_dir, "search", FACTS["pdf"], "--k", "2", "--collection", "cli", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["source"] == "docs/survey.pdf" and hits[0]["page"] == 2
    assert {"text", "source", "page", "start", "end", "score"} <= set(hits[0])

    code, out, _ = run(capsys, data_dir, "ingest", str(folder / "bees.md"), "--collection", "cli")
    assert code == 0 and "unchanged" in out  # a folder file added by itself keeps its identity (its path)


def test_bad_files_exit_nonzero_with_a_message_each(capsys, data_dir, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "ok.txt").write_text("Hedgehogs hibernate under leaf piles.", encoding="utf-8")
    big = tmp_path / "big.txt"
    big.write_text("x" * 3000, encoding="utf-8")
    code, out, err = run(
        capsys,
        data_dir,
        "ingest",
        str(tmp_path / "empty.txt"),
        str(tmp_path / "ok.txt"),
        str(big),
        str(tmp_path / "missing.pdf"),
        "--max-upload-mb",
        "0.002",
    )
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert "empty" in lines[0] and "added" in lines[1] and "limit" in lines[2] and "no such file" in lines[3]
    assert "1 added" in err and "3 error" in err


def test_documents_list_and_delete_and_reindex(capsys, data_dir, tmp_path):
    (tmp_path / "del.txt").write_text("Narwhal tusks are teeth.", encoding="utf-8")
    run(capsys, data_dir, "ingest", str(tmp_path / "del.txt"), "--collection", "del")
    code, out, _ = run(capsys, data_dir, "documents", "--collection", "del", "--json")
    docs = json.loads(out)
    assert code == 0 and [d["name"] for d in docs] == ["del.txt"]
    code, _, _ = run(capsys, data_dir, "documents", "--delete", docs[0]["id"])
    assert code == 0
    _, out, _ = run(capsys, data_dir, "search", "Narwhal", "--collection", "del", "--json", "--mode", "bm25")
    assert json.loads(out) == []
    code, out, _ = run(capsys, data_dir, "reindex")
    assert code == 0 and "Embedded 0 chunk(s)" in out


def test_search_errors_are_clear(capsys, data_dir, monkeypatch):
    code, _, err = run(capsys, data_dir, "search", "anything", "--collection", "no-such-collection")
    assert code == 2 and "No collection named 'no-such-collection'" in err
    code, _, err = run(capsys, data_dir, "search", "  ")
    assert code == 2 and "Type something" in err

    # without CLIP weights image search is not available, and says what is missing
    missing = str(data_dir / "no-such-clip.safetensors")
    code, _, err = run(capsys, data_dir, "--clip-pretrained", missing, "search", "a red square", "--images")
    assert code == 2 and "--clip-pretrained" in err and "Traceback" not in err
