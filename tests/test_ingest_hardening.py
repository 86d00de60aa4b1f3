"""Hostile and unlucky input at ingest: private files, links out of a folder, files that hang,
crash or trip a parser, and uploads that must not outlive their ingest. Real SQLite, Chroma,
MiniLM and a real parser worker process."""

from __future__ import annotations

import io
import os
import stat

import pytest
from test_rag_support import make_pdf

from app import documents_handlers as dh
from engine import Settings, build
from engine.errors import IngestError
from engine.rag import loaders


def shared_stream_pdf(pages: int, ops: int = 5000) -> bytes:
    """A few KB that take pypdf seconds per page: every page points at one big content stream."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 11 Tf 72 740 Td " + b"(x) Tj " * ops + b"ET")
    stream = writer._add_object(content.flate_encode())
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = stream
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """Services with tight parse limits, so hostile files are refused in a test's time."""
    data = tmp_path_factory.mktemp("strict") / "data"
    services = build(Settings(data_dir=data, ingest_max_pages=300, ingest_parse_seconds=3), load_model=False)
    yield services
    services.close()


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_and_everything_in_it_are_private(tmp_path):
    old = os.umask(0o022)  # the usual umask, which left the data 0755/0644 for every local user
    try:
        services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
        try:
            services.documents.ingest_paths([_write(tmp_path / "a.txt", "Private notes about herons.")])
            data = services.settings.data_dir
            assert mode(data) == 0o700
            for folder in ("chroma", "files", "models"):
                assert mode(data / folder) == 0o700, folder
            for name in ("hearth.db", "hearth.db-wal", "hearth.db-shm", "hearth.lock"):
                assert (data / name).exists() and mode(data / name) == 0o600, name
        finally:
            services.close()
    finally:
        os.umask(old)


def test_an_existing_open_data_dir_is_tightened(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "hearth.db").touch(mode=0o644)
    os.chmod(data, 0o755)
    os.chmod(data / "hearth.db", 0o644)
    build(Settings(data_dir=data), load_model=False).close()
    assert mode(data) == 0o700 and mode(data / "hearth.db") == 0o600


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_folder_ingest_skips_links_out_of_the_folder_and_says_so(strict, tmp_path):
    secret = _write(tmp_path / "id_rsa", "BEGIN OPENSSH PRIVATE KEY zebrafinch")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _write(outside / "diary.txt", "Dear diary: pangolin")
    folder = tmp_path / "notes"
    folder.mkdir()
    _write(folder / "real.txt", "Notes about the walrus colony.")
    (folder / "notes.txt").symlink_to(secret)
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "again.txt").symlink_to(folder / "real.txt")  # inside the folder: fine to read

    results = {
        os.path.basename(r.path): r for r in strict.documents.ingest_paths([folder], collection="links")
    }
    assert results["again.txt"].status == "added"  # sorted first
    assert (
        results["notes.txt"].status == "skipped" and "link outside the folder" in results["notes.txt"].message
    )
    assert results["linked"].status == "skipped" and "folder" in results["linked"].message
    assert results["real.txt"].status == "unchanged"  # the same bytes, written once
    texts = " ".join(strict.documents.document_text(d.id) for d in strict.documents.documents("links"))
    assert "zebrafinch" not in texts and "pangolin" not in texts and "walrus" in texts


def test_a_hanging_pdf_is_stopped_and_the_rest_of_the_batch_goes_in(strict, tmp_path):
    hostile = tmp_path / "slow.pdf"
    hostile.write_bytes(shared_stream_pdf(pages=250))  # ~250 x 0.2 s of parsing, from a few KB
    pages = tmp_path / "pages.pdf"
    pages.write_bytes(shared_stream_pdf(pages=400, ops=10))
    good = _write(tmp_path / "good.txt", "The okapi is a forest giraffe.")
    fine_pdf = tmp_path / "fine.pdf"
    fine_pdf.write_bytes(make_pdf([["The quokka lives on Rottnest Island."]]))

    results = strict.documents.ingest_paths([hostile, good, pages, fine_pdf], collection="hostile")
    by_name = {os.path.basename(r.path): r for r in results}
    assert len(hostile.read_bytes()) < 100_000
    assert by_name["slow.pdf"].status == "error" and "took too long" in by_name["slow.pdf"].message
    assert by_name["pages.pdf"].status == "error" and "too many pages" in by_name["pages.pdf"].message
    assert by_name["good.txt"].status == "added" and by_name["fine.pdf"].status == "added"
    assert (
        strict.documents.search("okapi forest giraffe", k=1, collections=["hostile"])[0].source == "good.txt"
    )
    assert {d.name for d in strict.documents.documents("hostile")} == {"good.txt", "fine.pdf"}


def test_too_much_text_is_refused_with_the_limit_named():
    deep = ('{"a":' * 500 + "[" + ",".join(["1"] * 3000) + "]" + "}" * 500).encode()  # 3M chars of paths
    with pytest.raises(IngestError, match="characters of text"):
        loaders.load_bytes(
            deep, name="deep.json", kind="json", limits=loaders.LoadLimits(max_chars=1_000_000)
        )
    with pytest.raises(IngestError, match="characters of text"):
        loaders.load_bytes(
            b"word " * 1000, name="a.txt", kind="text", limits=loaders.LoadLimits(max_chars=100)
        )


def test_a_csv_field_over_128_kb_is_read_and_does_not_stop_the_batch(strict, tmp_path):
    import csv

    limit = csv.field_size_limit()
    big = tmp_path / "big.csv"
    # a 140 KB field, padded with spaces (as fixed-width exports are) so embedding it stays quick
    big.write_text('id,notes\n1,"narwhal' + " " * 140_000 + 'tusk"\n2,short\n', encoding="utf-8")
    good = _write(tmp_path / "after.txt", "The axolotl regrows its limbs.")
    results = {
        os.path.basename(r.path): r for r in strict.documents.ingest_paths([big, good], collection="csv")
    }
    assert results["big.csv"].status == "added" and "plain text" in results["big.csv"].message
    assert results["after.txt"].status == "added"
    assert csv.field_size_limit() == limit  # no process-wide state was changed
    assert "narwhal" in strict.documents.search("narwhal", k=1, collections=["csv"], mode="bm25")[0].text


def test_an_unexpected_exception_costs_one_file_not_the_batch(strict, tmp_path, monkeypatch, caplog):
    from engine.rag import ingest

    real = ingest.chunk_blocks

    def flaky(blocks, **kwargs):
        if any("boom" in b.text for b in blocks):
            raise ZeroDivisionError("a bug in a loader")
        return real(blocks, **kwargs)

    monkeypatch.setattr(ingest, "chunk_blocks", flaky)
    bad = _write(tmp_path / "bad.txt", "boom goes this one")
    good = _write(tmp_path / "fine.txt", "The tuatara is older than the dinosaurs.")
    results = strict.documents.ingest_paths([bad, good], collection="bugs")
    assert results[0].status == "error" and "ZeroDivisionError" in results[0].message
    assert "bug in Hearth" in results[0].message and "Traceback" not in results[0].message
    assert results[1].status == "added"
    assert "ZeroDivisionError" in caplog.text  # the traceback went to the log


def test_a_reader_crash_costs_one_file(strict, tmp_path):
    """Kill the worker while it reads (as a segfault would): that file fails, the next one is read."""
    import threading
    import time

    first = _write(tmp_path / "first.txt", "The kea is an alpine parrot.")
    assert strict.documents.ingest_paths([first], collection="crash")[0].status == "added"  # worker up
    (worker,) = strict.documents._parser.workers
    process = worker._process

    def kill_while_reading():
        while not worker._lock.locked():
            time.sleep(0.01)
        time.sleep(1.0)  # the 100-page file takes ~20 s: well inside its parse
        process.kill()

    slow = tmp_path / "slow.pdf"
    slow.write_bytes(shared_stream_pdf(pages=100))
    good = _write(tmp_path / "next.txt", "The kakapo is a flightless parrot.")
    killer = threading.Thread(target=kill_while_reading, daemon=True)
    killer.start()
    results = strict.documents.ingest_paths([slow, good], collection="crash")
    killer.join()
    assert results[0].status == "error" and "crashed the reader" in results[0].message
    assert results[1].status == "added" and worker._process is not process  # a fresh worker read it


def upload_like_gradio(tmp_path, name: str, data: bytes):
    folder = tmp_path / "gradio" / "5e1f0c"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_uploads_are_deleted_after_ingest_whether_they_went_in_or_not(strict, tmp_path):
    good = upload_like_gradio(tmp_path / "a", "minutes.txt", b"The committee approved the heron survey.")
    bad = upload_like_gradio(tmp_path / "b", "broken.pdf", b"%PDF-1.4 broken")
    report = dh.upload(strict, [str(good), str(bad)], "uploads")
    assert "1 added" in report and "1 error" in report
    assert not good.exists() and not bad.exists()
    assert not good.parent.exists() and not bad.parent.exists()  # Gradio's per-upload folders too
    assert [d.name for d in strict.documents.documents("uploads")] == ["minutes.txt"]
    again = dh.upload(strict, [str(good), str(bad)], "uploads")  # "Add" pressed a second time
    assert again == dh.ALREADY_ADDED and str(tmp_path) not in again


def test_a_slow_file_does_not_hold_up_another_ingest(tmp_path):
    import threading

    services = build(Settings(data_dir=tmp_path / "data", ingest_parse_seconds=600), load_model=False)
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(shared_stream_pdf(pages=400))  # minutes of parsing
    outcome: list = []
    busy = threading.Thread(
        target=lambda: outcome.extend(services.documents.ingest_paths([slow])), daemon=True
    )
    try:
        busy.start()
        good = _write(tmp_path / "quick.txt", "The dugong grazes on seagrass.")
        quick = services.documents.ingest_paths([good])
        assert busy.is_alive()  # the slow file is still being read...
        assert quick[0].status == "added"  # ...and this one went in meanwhile
        assert services.documents.search("dugong seagrass", k=1)[0].source == "quick.txt"
    finally:
        services.close()  # kills the worker still reading the slow file
        busy.join(timeout=60)
    assert not busy.is_alive() and outcome[0].status == "error"


def test_consistency_names_a_document_missing_from_an_index(tmp_path):
    """The fault battery's check: a document whose vectors are gone is reported, and repair fixes it."""
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        doc = tmp_path / "pump.txt"
        doc.write_text("The Ferrovia pump must be primed with two litres of water.\n" * 30)
        [result] = services.documents.ingest_paths([doc], collection="checks")
        assert services.documents.consistency() == {"documents": [result.id], "inconsistent": []}
        index = services.documents.vector_index("checks")
        index.delete(ids=index.ids()[:1])
        assert services.documents.consistency()["inconsistent"] == [result.id]
        services.documents.repair()
        assert services.documents.consistency()["inconsistent"] == []
    finally:
        services.close()
