"""An ingest killed with SIGKILL halfway through a big file resumes where it stopped, and every
ingest reports files done, chunks/s and time left. The killed ingest is a real CLI process over
real SQLite and Chroma; the resumed one runs in this process, to count what it embeds."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import Settings, build
from engine.rag import ingest, pipeline
from engine.rag.pipeline import EMBED_SLICE

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "bench" / "data" / "eval" / "en_man" / "docs"
SMALL = {
    "ferry.txt": "The ferry to Inishmore leaves the pier at seven every morning in summer.",
    "kiln.txt": "Brush the kiln shelves with a soft brush and never wash them with water.",
    "owl.txt": "Barn owls nest in the old granary above the cider press each spring.",
}


def write_folder(folder: Path, *, big_pages: int) -> None:
    """Three small notes and one big file of real text (Debian man pages, each once)."""
    folder.mkdir()
    for name, text in SMALL.items():
        (folder / name).write_text(text, encoding="utf-8")
    pages = sorted(MAN.iterdir())[:big_pages]
    (folder / "manual.txt").write_text(
        "\n\n".join(p.read_text(encoding="utf-8") for p in pages), encoding="utf-8"
    )


def cli_ingest(data: Path, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``run.py ingest FOLDER`` in a child process (offline)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), "ingest", str(folder)], env


def count(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(f"select count(*) from {table}").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def test_progress_reports_files_chunks_rate_and_time_left(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "EMBED_SLICE", 8)  # several slices from a small folder
    folder = tmp_path / "folder"
    write_folder(folder, big_pages=4)
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    events = []
    try:
        results = services.documents.ingest_paths([folder], on_progress=events.append)
    finally:
        services.close()
    chunks = sum(r.items for r in results)
    assert [r.status for r in results] == ["added"] * 4
    done = [e.chunks_done for e in events]
    assert done == sorted(done) and done[-1] == chunks
    final = events[-1]
    assert (final.files_done, final.files_total, final.chunks_total) == (4, 4, chunks)
    assert final.chunks_per_second > 0 and final.seconds_left == 0
    assert final.line().startswith(f"4/4 files · {chunks:,}/{chunks:,} chunks · ")
    # before the big file was parsed, its chunks were already counted in (estimated from its size)
    assert events[0].chunks_total > 3
    midway = [e for e in events if 0 < e.chunks_done < chunks and e.seconds_left]
    assert midway, "no event while the big file was being embedded"


@pytest.mark.timeout(600)
def test_ingest_killed_mid_file_resumes_without_redoing_finished_work(tmp_path):
    folder, data = tmp_path / "folder", tmp_path / "data"
    write_folder(folder, big_pages=10)
    db = Settings(data_dir=data).db_path
    cmd, env = cli_ingest(data, folder)
    # stderr to a file: progress lines could fill an unread pipe and block the ingest
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr.txt").open("w"), env=env, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 400
        # the small files are committed, and at least one slice of the big file's vectors is cached
        while count(db, "rag_vector_cache") < len(SMALL) + EMBED_SLICE and time.monotonic() < deadline:
            assert proc.poll() is None, "the ingest ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert count(db, "rag_documents") == len(SMALL)  # the big file was not committed: killed mid-file
    cached_before = count(db, "rag_vector_cache")

    services = build(Settings(data_dir=data), load_model=False)  # the kill left the lock free
    try:
        s = services.documents
        results = {Path(r.path).name: r for r in s.ingest_paths([folder])}
        assert {n: r.status for n, r in results.items()} == {
            **dict.fromkeys(SMALL, "unchanged"),
            "manual.txt": "added",
        }
        big = results["manual.txt"].items
        assert s.cached.misses <= big - (
            cached_before - len(SMALL)
        )  # the slices done before the kill are reused
        assert s.cached.hits >= EMBED_SLICE
        assert s.consistency()["inconsistent"] == []
        assert s.repair() == {"embedded": 0, "removed": 0}  # nothing half-written was left in Chroma
        hits = s.search("change file mode bits", k=5, mode="bm25")
        assert any(h.source.endswith("manual.txt") for h in hits)
    finally:
        services.close()


def test_the_cli_progress_line_prints_the_final_state_once():
    import io

    from cli.progress_line import ProgressLine
    from engine.rag.progress import ProgressMeter

    out = io.StringIO()  # not a terminal: a line now and then, and the last state at the end
    line = ProgressLine(out, every=3600)
    meter = ProgressMeter([2000, 1000], line)
    meter.parsed(0, 2)
    meter.embedded(2, "a.txt")
    meter.file_done("a.txt")
    meter.parsed(1, 1)
    meter.embedded(1, "b.txt")
    meter.file_done("b.txt")
    line.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("0/2 files · 2/3 chunks · ") and lines[0].endswith("a.txt")
    assert lines[-1].startswith("2/2 files · 3/3 chunks · ") and "0 s left" in lines[-1]
    assert len(lines) == 2


def test_a_stopped_ingest_leaves_the_rest_out_cleanly_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "EMBED_SLICE", 8)
    monkeypatch.setattr(ingest, "BIG_FILE_BYTES", 10_000)  # the 19 KB manual counts as big
    folder = tmp_path / "folder"
    write_folder(folder, big_pages=4)
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        s = services.documents
        seen = []
        stop = threading.Event()

        def stop_midway(progress) -> None:  # after the small files and two slices of the big one
            seen.append(progress)
            if progress.files_done == len(SMALL) and progress.chunks_done >= 3 + 16:
                stop.set()

        results = {
            Path(r.path).name: r for r in s.ingest_paths([folder], on_progress=stop_midway, cancel=stop)
        }
        assert {n: r.status for n, r in results.items()} == {
            **dict.fromkeys(SMALL, "added"),
            "manual.txt": "skipped",
        }
        assert results["manual.txt"].message == pipeline.STOPPED
        assert s.consistency()["inconsistent"] == [] and len(s.documents()) == len(SMALL)
        misses = s.cached.misses
        again = {Path(r.path).name: r for r in s.ingest_paths([folder])}
        assert again["manual.txt"].status == "added"
        assert s.cached.misses - misses <= again["manual.txt"].items - 16  # the two slices were kept
    finally:
        services.close()
