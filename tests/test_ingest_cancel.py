"""Stopping an ingest: the engine's cancel event (the page's Stop, the CLI's Ctrl+C) ends a real
ingest at a clean point. Files whose vectors are all ready are committed, the others are left
out whole, and search, SQLite, the keyword index and Chroma agree. Real SQLite, Chroma and
MiniLM; the CLI as a real process stopped by SIGINT to its process group, as a terminal's
Ctrl+C is."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_rag_resume import SMALL, cli_ingest, count, write_folder

from engine import Settings, build
from engine.library import STOPPED
from engine.rag import ingest, pipeline

ROOT = Path(__file__).resolve().parent.parent


def agree(s) -> set[str]:
    """The documents of ``library`` after checking that every index holds exactly their chunks."""
    chunks = {row["id"] for row in s.store.iter_chunks("library")}
    assert set(s.vector_index("library").ids()) == chunks  # no vector of a file left out
    assert s.store.keyword_chunks("library") == chunks
    assert s.consistency()["inconsistent"] == []
    return {d.name for d in s.documents("library")}


def test_cancel_mid_batch_commits_the_files_whose_vectors_are_ready_and_nothing_else(tmp_path, monkeypatch):
    # one batch for the whole folder, embedded 8 chunks at a time (shortest first): the three
    # one-line notes are in the first slice, the manual's 80-odd chunks are not
    monkeypatch.setattr(pipeline, "EMBED_SLICE", 8)
    monkeypatch.setattr(ingest, "BIG_FILE_BYTES", 10**9)
    monkeypatch.setattr(ingest, "FLUSH_CHUNKS", 10**6)
    folder = tmp_path / "folder"
    write_folder(folder, big_pages=4)
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        s = services.documents
        cancel = threading.Event()
        slices = []

        def stop_after_the_first_slice(progress) -> None:
            if progress.chunks_done:
                slices.append(progress.chunks_done)
                cancel.set()

        results = {
            Path(r.path).name: r
            for r in s.ingest_paths([folder], on_progress=stop_after_the_first_slice, cancel=cancel)
        }
        assert slices[0] == 8  # stopped mid-batch, after one slice of several
        assert {n: r.status for n, r in results.items()} == {
            **dict.fromkeys(SMALL, "added"),
            "manual.txt": "skipped",
        }
        assert results["manual.txt"].message == STOPPED
        committed = {f"folder/{n}" for n, r in results.items() if r.status == "added"}
        assert agree(s) == committed
        for text in SMALL.values():  # searchable: exactly the committed files
            assert {h.source for h in s.search(text, k=3, mode="bm25")} & committed
        assert {h.source for h in s.search("change file mode bits chmod", k=10, mode="bm25")} <= committed

        misses = s.cached.misses
        again = {Path(r.path).name: r for r in s.ingest_paths([folder])}
        assert again["manual.txt"].status == "added"
        assert s.cached.misses - misses <= again["manual.txt"].items - (
            8 - len(SMALL)
        )  # its first slice kept
        assert agree(s) == committed | {"folder/manual.txt"}
    finally:
        services.close()


@pytest.mark.timeout(600)
def test_ctrl_c_stops_the_cli_ingest_cleanly_with_exit_code_130(tmp_path):
    folder, data = tmp_path / "folder", tmp_path / "data"
    write_folder(folder, big_pages=12)
    db = Settings(data_dir=data).db_path
    cmd, env = cli_ingest(data, folder)
    out_file, err_file = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # a session of its own, so the signal goes to the whole group (the parser worker too), as from a
    # terminal; output to files: progress lines could fill an unread pipe and block the ingest
    with out_file.open("w") as out_fh, err_file.open("w") as err_fh:
        proc = subprocess.Popen(cmd, stdout=out_fh, stderr=err_fh, env=env, cwd=ROOT, start_new_session=True)
        try:
            deadline = time.monotonic() + 400
            while count(db, "rag_documents") < len(SMALL) and time.monotonic() < deadline:  # the notes are in
                assert proc.poll() is None, "the ingest ended before it could be stopped"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    out, err = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 130, err
    assert "Stopping after the file in progress" in err
    assert f"Stopped: {len(SMALL)} file(s) added; 1 not added" in err
    assert "manual.txt: skipped: the ingest was stopped" in out

    services = build(Settings(data_dir=data), load_model=False)  # the lock was given back
    try:
        assert agree(services.documents) == {f"folder/{n}" for n in SMALL}
    finally:
        services.close()
