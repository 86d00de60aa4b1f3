"""The Documents tab's watched folders and upload progress: handlers on real services, and the
page in Debian's Chromium (Playwright) over a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from page_support import open_page, serve_page

from app import documents_handlers as dh
from engine import Settings, build

FERRY = "The ferry to Inishmore leaves the pier at seven every morning in summer."
OWL = "Barn owls nest in the old granary above the cider press each spring."


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve_page(tmp_path_factory.mktemp("watch-page") / "data", load_model=False) as served:
        yield served


def test_upload_reports_chunks_per_second_and_time_left(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        note = tmp_path / "ferry.txt"
        note.write_text(FERRY, encoding="utf-8")
        captions: list[str] = []
        report = dh.upload(
            services, [str(note)], "library", on_progress=lambda p: captions.append(dh.progress_text(p))
        )
        assert "1 added" in report
        assert captions[-1].startswith("1/1 files · 1/1 chunks · ") and "chunks/s" in captions[-1]
        assert captions[-1].endswith("0 s left · ferry.txt")
        assert "no such folder" in dh.watch_folder(services, str(tmp_path / "nowhere"), "library")
        assert dh.watched_table(services) == []
        assert "Watching" in dh.watch_folder(services, str(tmp_path), "notes")
        assert dh.watched_table(services) == [[str(tmp_path.resolve()), "notes", ""]]
        assert "Stopped watching" in dh.unwatch_folder(services, str(tmp_path.resolve()))
        assert dh.watched_choices(services) == []
    finally:
        services.close()


def shows(page, elem_id: str, text: str) -> None:
    page.wait_for_function(
        "([id, text]) => (document.getElementById(id)?.innerText || '').includes(text)",
        arg=[elem_id, text],
        timeout=60_000,
    )


@pytest.mark.browser
def test_watch_a_folder_from_the_documents_tab(served, browser, tmp_path):
    services, url = served
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
    page = open_page(browser, url)
    try:
        page.get_by_role("tab", name="Documents").click()
        page.get_by_text("Watched folders").click()
        page.fill("#docs-watch-folder textarea", str(folder))
        page.click("#docs-watch")
        page.wait_for_selector("#docs-watch-note >> text=Watching", timeout=30_000)
        shows(page, "docs-watched", str(folder.resolve()))
        # the server's watcher indexes the folder; the tab refreshes itself
        shows(page, "docs-table", "notes/ferry.txt")
        (folder / "owl.txt").write_text(OWL, encoding="utf-8")
        shows(page, "docs-table", "notes/owl.txt")
        shows(page, "docs-watched", "added")
        page.screenshot(path=str(tmp_path / "watched.png"))
    finally:
        page.close()
    # a page opened later (a reload) lists the folder and follows it too (the server started
    # with nothing watched)
    page = open_page(browser, url)
    try:
        page.get_by_role("tab", name="Documents").click()
        page.get_by_text("Watched folders").click()
        (folder / "ferry-again.txt").write_text(FERRY + "\nAgain.", encoding="utf-8")
        shows(page, "docs-table", "notes/ferry-again.txt")
        page.click("#docs-watched-pick input")
        page.get_by_role("option", name=str(folder.resolve())).wait_for(timeout=30_000)
    finally:
        page.close()
    assert {d.name for d in services.documents.documents("library")} >= {"notes/ferry.txt", "notes/owl.txt"}
    assert [w.folder for w in services.documents.watcher.folders()] == [str(folder.resolve())]


def test_a_stopped_upload_says_what_went_in(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        notes = [tmp_path / "ferry.txt", tmp_path / "owl.txt"]
        for note, text in zip(notes, (FERRY, OWL)):
            note.write_text(text, encoding="utf-8")
        stops = dh.UploadStops()
        assert stops.stop("tab-1") == "No upload is running."
        cancel = stops.begin("tab-1")
        assert stops.stop("tab-2") == "No upload is running."  # another tab's Stop is not this upload's
        assert not cancel.is_set()
        assert stops.stop("tab-1").startswith("Stopping") and cancel.is_set()
        report = dh.upload(services, [str(n) for n in notes], "library", cancel=cancel)
        assert report.startswith("**Stopped: 0 file(s) added; 2 not added")
        assert "ferry.txt: not added, the upload was stopped" in report
        assert services.documents.documents() == []
    finally:
        services.close()


def wait_for(condition, what: str, seconds: float = 300) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.browser
def test_stop_ends_a_page_upload_after_the_file_in_progress(served, browser, tmp_path):
    from test_rag_resume import MAN

    services, url = served
    notes = {
        "quay.txt": "The quay lights at Rosslare are switched on at dusk by the harbour master.",
        "loom.txt": "Oil the loom's heddle frame once a month with a drop of sewing machine oil.",
        "hive.txt": "Check the hive for queen cells every nine days from April to July.",
    }
    for name, text in notes.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    pages = sorted(MAN.iterdir())  # then one long manual of real text (Debian man pages)
    (tmp_path / "manual.txt").write_text("\n\n".join(p.read_text(encoding="utf-8") for p in pages))
    files = [str(tmp_path / n) for n in (*notes, "manual.txt")]
    before = {d.name for d in services.documents.documents()}
    page = open_page(browser, url)
    try:
        page.get_by_role("tab", name="Documents").click()
        assert not page.locator("#docs-stop").is_visible()
        page.locator("#docs-upload input[type=file]").set_input_files(files)
        page.wait_for_timeout(1000)  # the upload reaches the server before the button is pressed
        page.click("#docs-add")
        page.wait_for_selector("#docs-stop", state="visible", timeout=30_000)
        # the notes are committed first (smallest first); the progress bar says so
        wait_for(lambda: len({d.name for d in services.documents.documents()} - before) == 3, "the notes")
        page.wait_for_function("document.body.innerText.includes('3/4 files')", timeout=60_000)
        page.click("#docs-stop")
        shows(page, "docs-added", "Stopped: 3 file(s) added; 1 not added")
        page.wait_for_selector("#docs-stop", state="hidden", timeout=30_000)
        shows(page, "docs-added", "manual.txt: not added, the upload was stopped")
        page.screenshot(path=str(tmp_path / "stopped.png"))
    finally:
        page.close()
    s = services.documents
    assert {d.name for d in s.documents()} - before == set(notes)
    assert s.consistency()["inconsistent"] == []
    chunks = {row["id"] for row in s.store.iter_chunks("library")}
    assert set(s.vector_index("library").ids()) == chunks  # nothing of the manual was left in Chroma


@pytest.mark.browser
def test_a_folder_watched_from_the_cli_is_in_the_page_list_and_syncs(browser, tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    data, folder = tmp_path / "data", tmp_path / "field-notes"
    folder.mkdir()
    (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    cmd = [sys.executable, str(root / "run.py"), "--data-dir", str(data), "watched", "--add", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr
    with serve_page(data, load_model=False) as (_, url):
        page = open_page(browser, url)
        try:
            page.get_by_role("tab", name="Documents").click()
            page.get_by_text("Watched folders").click()
            shows(page, "docs-watched", str(folder.resolve()))
            shows(page, "docs-table", "field-notes/ferry.txt")  # the server syncs it
            (folder / "owl.txt").write_text(OWL, encoding="utf-8")
            shows(page, "docs-table", "field-notes/owl.txt")
        finally:
            page.close()
