"""Folders that stay in sync: added, changed, renamed and deleted files reach search, and only
what changed is embedded. Real SQLite, Chroma and MiniLM; the CLI as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_rag_support import make_zip_bomb, open_services

from engine import Settings, build

ROOT = Path(__file__).resolve().parent.parent
FERRY = "The ferry to Inishmore leaves the pier at seven every morning in summer."
KILN = "Brush the kiln shelves with a soft brush and never wash them with water."
OWL = "Barn owls nest in the old granary above the cider press each spring."


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    yield from open_services(tmp_path_factory)


def names(documents, query: str, collection: str) -> set[str]:
    return {h.source for h in documents.search(query, k=5, collections=[collection], mode="bm25")}


def settle(watcher, polls: int = 3) -> None:
    """A change is taken once two polls agree on it; a few polls are always enough."""
    for _ in range(polls):
        watcher.poll_once()


def test_add_change_rename_delete_reach_search_and_embed_only_what_changed(docs, tmp_path):
    s, watcher = docs.documents, docs.documents.watcher
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
    watcher.add(folder, "synced")
    first = watcher.poll_once()  # a new watch takes the folder as it is at once
    assert [r.status for r in first[0].results] == ["added"]
    assert names(s, "ferry Inishmore", "synced") == {"notes/ferry.txt"}

    (folder / "kiln.md").write_text(f"# Kiln\n\n{KILN}", encoding="utf-8")  # added
    settle(watcher)
    assert names(s, "kiln shelves brush", "synced") == {"notes/kiln.md"}

    misses = s.cached.misses
    (folder / "ferry.txt").write_text(FERRY + "\n\nIn winter it leaves at nine.", encoding="utf-8")  # changed
    settle(watcher)
    assert names(s, "winter leaves at nine", "synced") == {"notes/ferry.txt"}
    assert s.cached.misses - misses == 1  # only the changed file's one chunk was embedded
    assert len(s.documents("synced")) == 2  # the old version went

    kiln_id = next(d.id for d in s.documents("synced") if d.name == "notes/kiln.md")
    misses = s.cached.misses
    sub = folder / "pottery"
    sub.mkdir()
    (folder / "kiln.md").rename(sub / "kiln-care.md")  # renamed (and moved)
    settle(watcher)
    assert names(s, "kiln shelves brush", "synced") == {"notes/pottery/kiln-care.md"}
    assert s.cached.misses == misses  # a rename embeds nothing
    assert kiln_id in {d.id for d in s.documents("synced")}  # the same document, moved

    (folder / "ferry.txt").unlink()  # deleted
    settle(watcher)
    assert names(s, "ferry Inishmore", "synced") == set()
    assert [d.name for d in s.documents("synced")] == ["notes/pottery/kiln-care.md"]
    assert s.consistency()["inconsistent"] == []


def test_hostile_files_and_links_out_never_stop_the_watcher(docs, tmp_path):
    s, watcher = docs.documents, docs.documents.watcher
    secret = tmp_path / "secret.txt"
    secret.write_text("The vault code is 7741.", encoding="utf-8")
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "leak.txt").symlink_to(secret)
    make_zip_bomb(folder / "bomb.docx", megabytes=20)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    watcher.add(folder, "inbox")
    watcher.poll_once()
    (folder / "owl.txt").write_text(OWL, encoding="utf-8")
    settle(watcher)
    assert names(s, "barn owls granary", "inbox") == {"inbox/owl.txt"}
    assert names(s, "vault code", "inbox") == set()  # the link out of the folder was not followed
    assert {d.name for d in s.documents("inbox")} == {"inbox/owl.txt"}
    status = {w.folder: w.status for w in watcher.folders()}[str(folder.resolve())]
    assert "1 added" in status


def test_an_unplugged_folder_keeps_its_documents_and_the_list_survives_a_restart(tmp_path):
    data = tmp_path / "data"
    folder = tmp_path / "usb"
    folder.mkdir()
    (folder / "owl.txt").write_text(OWL, encoding="utf-8")
    services = build(Settings(data_dir=data), load_model=False)
    try:
        services.documents.watcher.add(folder, "usb")
        services.documents.watcher.poll_once()
        folder.rename(tmp_path / "usb-away")  # unmounted
        report = services.documents.watcher.poll_once()[0]
        assert report.problem and "kept" in report.problem
        assert [d.name for d in services.documents.documents("usb")] == ["usb/owl.txt"]
    finally:
        services.close()
    (tmp_path / "usb-away").rename(folder)
    services = build(Settings(data_dir=data), load_model=False)
    try:
        watcher = services.documents.watcher
        assert [(w.folder, w.collection) for w in watcher.folders()] == [(str(folder.resolve()), "usb")]
        (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
        watcher.start()  # the thread the server runs
        deadline = time.monotonic() + 60
        while not names(services.documents, "ferry Inishmore", "usb") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names(services.documents, "ferry Inishmore", "usb") == {"usb/ferry.txt"}
        watcher.remove(str(folder.resolve()))
        assert watcher.folders() == []
        assert len(services.documents.documents("usb")) == 2  # stopping a watch deletes nothing
    finally:
        services.close()


def test_cli_ingest_watch_follows_the_folder_until_ctrl_c(tmp_path):
    data, folder = tmp_path / "data", tmp_path / "desk"
    folder.mkdir()
    (folder / "ferry.txt").write_text(FERRY, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), "ingest", "--watch", str(folder)]
    # stderr to a file: progress lines could fill an unread pipe and block the process
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=ROOT)
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "added" in line and "ferry.txt" in line:
                break
        time.sleep(1.5)  # let it prime; then a new file and a deleted one
        (folder / "owl.txt").write_text(OWL, encoding="utf-8")
        (folder / "ferry.txt").unlink()
        seen = ""
        for line in proc.stdout:  # type: ignore[union-attr]
            seen += line
            if "removed" in seen and "owl.txt" in seen:
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        errors.close()
    assert "added: desk/owl.txt" in seen and "removed: desk/ferry.txt" in seen
    link = tmp_path / "desk-link"
    link.symlink_to(folder)
    services = build(Settings(data_dir=data), load_model=False)
    try:
        assert [d.name for d in services.documents.documents()] == ["desk/owl.txt"]
        watcher = services.documents.watcher  # the one list the Documents tab shows and syncs
        assert [(w.folder, w.collection) for w in watcher.folders()] == [(str(folder.resolve()), "library")]
        watcher.add(link, "library")  # the same folder spelled another way: still one entry
        watcher.add(f"{folder}/../desk", "library")
        assert [w.folder for w in watcher.folders()] == [str(folder.resolve())]
    finally:
        services.close()
    # removed from the command line (spelled through the link): gone from the page's list too
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), "watched", "--remove", str(link)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0 and "Stopped watching" in done.stdout, done.stderr
    services = build(Settings(data_dir=data), load_model=False)
    try:
        assert services.documents.watcher.folders() == []
        assert [d.name for d in services.documents.documents()] == ["desk/owl.txt"]  # documents stay
    finally:
        services.close()
