"""The Documents tab's watched folders and upload progress: handlers on real services, and the
page in Debian's Chromium (Playwright) over a real server."""

from __future__ import annotations

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
    assert {d.name for d in services.documents.documents("library")} >= {"notes/ferry.txt", "notes/owl.txt"}
    assert [w.folder for w in services.documents.watcher.folders()] == [str(folder.resolve())]
