"""Images in watched folders go to the image index (the Images tab's path) as text files go to the
documents index: added, changed, renamed and deleted files follow. Without CLIP the text files
still sync and the folder's status says why its images were skipped; once CLIP can load, they
follow. Real tiny CLIP (tests/test_vision_support.py), Chroma, SQLite and MiniLM."""

from __future__ import annotations

from test_vision_support import make_image, save_tiny_clip

from engine import Settings, build
from engine.rag import sync
from engine.vision import clip

OWL = "Barn owls nest in the old granary above the cider press each spring."
FERRY = "The ferry to Inishmore leaves the pier at seven every morning in summer."


def settle(watcher, polls: int = 3) -> None:
    """A change is taken once two polls agree on it; a few polls are always enough."""
    for _ in range(polls):
        watcher.poll_once()


def indexed(services) -> dict[str, str]:
    """file name -> source path of the image index's rows, after checking Chroma holds exactly them."""
    images = services.images.list("photos")
    assert set(services.images._index().ids()) == {i.id for i in images}
    return {i.file_name: i.source_path for i in images}


def test_images_follow_add_change_rename_delete(vservices, tmp_path):
    s, watcher = vservices, vservices.documents.watcher
    folder = tmp_path / "trip"
    folder.mkdir()
    (folder / "notes.txt").write_text(OWL, encoding="utf-8")
    make_image(folder / "harbour.png", seed=1)
    watcher.add(folder, "photos")
    first = watcher.poll_once()[0]
    assert sorted(r.status for r in first.results) == ["added", "added"]
    assert indexed(s) == {"harbour.png": str(folder.resolve() / "harbour.png")}
    assert [d.name for d in s.documents.documents("photos")] == ["trip/notes.txt"]
    hit = s.images.search_image(folder / "harbour.png", k=1, collection="photos")[0]
    assert hit.source == "harbour.png" and hit.score > 0.999

    make_image(folder / "cliffs.jpg", seed=2, fmt="JPEG")  # added
    settle(watcher)
    assert set(indexed(s)) == {"harbour.png", "cliffs.jpg"}

    before = {i.file_name: i.id for i in s.images.list("photos")}
    make_image(folder / "harbour.png", seed=3)  # changed
    settle(watcher)
    after = {i.file_name: i.id for i in s.images.list("photos")}
    assert set(after) == {"harbour.png", "cliffs.jpg"} and after["harbour.png"] != before["harbour.png"]
    hit = s.images.search_image(folder / "harbour.png", k=1, collection="photos")[0]
    assert hit.source == "harbour.png" and hit.score > 0.999  # the new picture is the one indexed

    (folder / "album").mkdir()
    (folder / "cliffs.jpg").rename(folder / "album" / "cliffs-at-dusk.jpg")  # renamed and moved
    settle(watcher)
    moved = {i.file_name: i.id for i in s.images.list("photos")}
    assert moved["cliffs-at-dusk.jpg"] == after["cliffs.jpg"]  # the same row: nothing read or embedded again
    assert indexed(s)["cliffs-at-dusk.jpg"] == str(folder.resolve() / "album" / "cliffs-at-dusk.jpg")

    (folder / "harbour.png").unlink()  # deleted
    settle(watcher)
    assert set(indexed(s)) == {"cliffs-at-dusk.jpg"}
    assert not any(p.name.startswith(after["harbour.png"]) for p in s.images.records.folder.iterdir())
    status = {w.folder: w.status for w in watcher.folders()}[str(folder.resolve())]
    assert "removed" in status


def test_without_clip_text_syncs_and_the_status_says_why_images_wait(tmp_path, monkeypatch):
    later = tmp_path / "clip-later"  # CLIP's folder does not exist yet
    settings = Settings(data_dir=tmp_path / "data", clip_model=f"local-dir:{later}")
    folder = tmp_path / "inbox"
    folder.mkdir()
    make_image(folder / "boat.png", seed=4)
    services = build(settings, load_model=False)
    try:
        watcher = services.documents.watcher
        watcher.add(folder, "photos")
        watcher.poll_once()
        (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
        settle(watcher)
        assert [d.name for d in services.documents.documents("photos")] == ["inbox/ferry.txt"]
        assert services.images.list("photos") == []
        status = {w.folder: w.status for w in watcher.folders()}[str(folder.resolve())]
        assert "1 image(s) skipped" in status and "does not exist" in status, status

        save_tiny_clip(later)  # the weights arrive: the skipped image follows, unchanged as it is
        monkeypatch.setattr(sync, "IMAGE_RETRY_S", 0.0)
        monkeypatch.setattr(clip, "RETRY_AFTER_S", 0.0)
        settle(watcher)
        assert [i.file_name for i in services.images.list("photos")] == ["boat.png"]
    finally:
        services.close()


def test_a_stopped_ingest_leaves_the_images_after_it_out(vservices, tmp_path):
    import threading

    from engine.library import STOPPED
    from engine.rag.routing import add_files

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "owl.txt").write_text(OWL, encoding="utf-8")
    make_image(folder / "barn.png", seed=5)
    cancel = threading.Event()

    def stop_once_the_note_is_in(progress) -> None:
        if progress.files_done == 1:
            cancel.set()

    results = add_files(
        vservices.documents, vservices.images, [folder], on_progress=stop_once_the_note_is_in, cancel=cancel
    )
    assert {r.path.rsplit("/", 1)[-1]: r.status for r in results} == {
        "owl.txt": "added",
        "barn.png": "skipped",
    }
    assert next(r for r in results if r.path.endswith("barn.png")).message == STOPPED
    assert vservices.images.list() == [] and not vservices.images.embedder.loaded
    assert [d.name for d in vservices.documents.documents()] == ["mixed/owl.txt"]
